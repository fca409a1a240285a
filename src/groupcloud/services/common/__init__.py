"""What every capability's use cases share: the process runtime (settings, database,
caches, clock), cursor pagination and the idempotency fingerprint of a request."""
