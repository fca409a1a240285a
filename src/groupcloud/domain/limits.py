"""What the storage can hold: the bounds every number of the API is checked against, so
that a value beyond a column is refused as bad input (422), never sent to the database
(where PostgreSQL refuses it with an error and SQLite stores it wrongly)."""

from __future__ import annotations

__all__ = ["MAX_AMOUNT", "MAX_KEY", "MAX_SECONDS"]

MAX_KEY = 2**31 - 1
"""The largest row id: ids are INTEGER columns (int4 on PostgreSQL)."""
MAX_SECONDS = 2**31 - 1
"""The largest duration in seconds stored in an INTEGER column (about 68 years)."""
MAX_AMOUNT = 10**15
"""The largest amount of one resource class (inventories, quotas, a unit's demand): sums
of a thousand of them still fit the BIGINT counters (2**63)."""
