"""The servers behind catalog services (a template's ``backend``) and the key that seals
their credentials, built once per process from settings.

A backend is what turns an instance's claimed capacity into a usable service: for
``postgresql``, a database and role per instance on the operator's PostgreSQL server
(``dbaas.postgres``) and a login role per binding. Its operations are idempotent (the
lifecycle retries them after crashes and timeouts) and raise ``DbaasError`` with
``retryable``.
"""

from __future__ import annotations

from typing import Any, Protocol

from groupcloud.dbaas import Credentials, PostgresService, SecretBox
from groupcloud.errors import BackendUnavailable
from groupcloud.services.common.runtime import Runtime

__all__ = ["Backend", "backend_of", "credentials_of", "new_secret_key", "secret_box"]

_BOX = "secret-box"


class Backend(Protocol):
    """What the lifecycle asks of a service's backend (``dbaas.PostgresService``)."""

    def provision(self, instance_id: str) -> Credentials: ...

    def deprovision(self, instance_id: str) -> None: ...

    def bind(self, instance_id: str, binding_id: str) -> Credentials: ...

    def rotate_binding(self, instance_id: str, binding_id: str) -> Credentials: ...

    def unbind(self, instance_id: str, binding_id: str) -> None: ...


def backend_of(rt: Runtime, name: str) -> Backend:
    """The process's backend ``name``; ``BackendUnavailable`` when the operator has not
    configured it (checked before anything is claimed)."""
    key = f"backend:{name}"
    found = rt.adapters.get(key)
    if isinstance(found, PostgresService):
        return found
    settings = rt.settings
    if name != "postgresql" or settings.dbaas_postgres_url is None:
        raise BackendUnavailable(
            f"the {name} service has no server configured: the operator sets "
            "GROUPCLOUD_DBAAS_POSTGRES_URL (and GROUPCLOUD_SECRET_KEY)",
            backend=name,
        )
    made = PostgresService(
        settings.dbaas_postgres_url.get_secret_value(),
        public_host=settings.dbaas_public_host,
        public_port=settings.dbaas_public_port,
    )
    rt.adapters[key] = made
    return made


def secret_box(rt: Runtime) -> SecretBox:
    """The key sealing credentials at rest (settings guarantee one with a backend)."""
    box = rt.adapters.get(_BOX)
    if isinstance(box, SecretBox):
        return box
    key = rt.settings.secret_key
    if key is None:
        raise BackendUnavailable("no GROUPCLOUD_SECRET_KEY is configured to seal credentials")
    made = SecretBox(
        key.get_secret_value(), old_keys=[k.get_secret_value() for k in rt.settings.secret_old_keys]
    )
    rt.adapters[_BOX] = made
    return made


def new_secret_key() -> str:
    """A new random key for ``GROUPCLOUD_SECRET_KEY``."""
    return SecretBox.generate_key()


def credentials_of(creds: Credentials) -> dict[str, Any]:
    """A binding's credentials as apps (and Open Service Broker platforms) read them."""
    return {
        "uri": creds.url,
        "host": creds.host,
        "port": creds.port,
        "database": creds.database,
        "username": creds.username,
        "password": creds.password,
    }
