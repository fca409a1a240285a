"""The public data contract: request and response bodies, one module per capability.

Shared by the services (which return these), the API (which renders them and publishes
them in OpenAPI) and the Python client (which parses responses into them), so the three
can never disagree about a field. Names are the API's own (``Allocation``, ``Host``);
the database's classes are ``*Row`` (``db.models``), so the two never collide.
"""
