"""The audit trail as use cases: recording an event inside the changing transaction and
reading the trail back (``GET /v1/events``)."""
