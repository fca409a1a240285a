"""Metering and chargeback: usage records from allocation events, rate cards, and monthly
statements per company (Asia/Seoul months, Decimal KRW). Pure computation on values; the
bulk path (``bulk``) runs the same accrual as one in-memory DuckDB query."""
