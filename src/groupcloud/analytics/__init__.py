"""Pure analytics engines: activity events, person keys, Seoul months, metric arithmetic and
the synthetic data generator. No I/O here: the services read files and run DuckDB."""
