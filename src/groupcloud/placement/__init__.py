"""Pure placement engine: an in-memory capacity index, filters, scorers and the pipeline.

Nothing here does I/O. The database stays the source of truth; the index only proposes
candidates, and a stale entry costs the claim a retry, never correctness.
"""
