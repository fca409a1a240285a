"""Managed databases for the SaaS catalog (issue #16): the adapters that create, rotate and
drop a tenant's database on a real server, and the box that keeps the credentials they hand
out encrypted at rest. The catalog, the services and the API build on these; nothing here
knows about companies or quotas.
"""

from groupcloud.dbaas.postgres import Credentials, DbaasError, DbaasNotFound, PostgresService
from groupcloud.dbaas.secrets import SecretBox, SecretBoxError

__all__ = [
    "Credentials",
    "DbaasError",
    "DbaasNotFound",
    "PostgresService",
    "SecretBox",
    "SecretBoxError",
]
