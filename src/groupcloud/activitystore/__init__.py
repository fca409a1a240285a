"""Adapter: the analytics activity store under ``<data_dir>/analytics`` (Parquet files
partitioned by Seoul month, a DuckDB de-dup index, readers and writers of event files).
It holds app activity events, not the control plane's audit trail (``db``)."""
