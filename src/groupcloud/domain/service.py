"""A catalog service instance's life cycle (docs/catalog.md)."""

from __future__ import annotations

import enum

__all__ = ["Operation", "ServiceState"]


class ServiceState(enum.StrEnum):
    """``provisioning -> ready -> (updating -> ready)* -> deprovisioning -> gone``, or
    ``failed`` (with a reason) when provisioning could not finish: every part it claimed
    is released then, and deleting it makes it ``gone``."""

    PROVISIONING = "provisioning"
    """Parts claimed; the backend (a database) is being made."""
    READY = "ready"
    UPDATING = "updating"
    """A new plan's parts are claimed; the old ones are being released."""
    DEPROVISIONING = "deprovisioning"
    """Bindings, backend and parts are being removed."""
    GONE = "gone"
    FAILED = "failed"

    @property
    def busy(self) -> bool:
        """An operation is under way: the worker finishes it if its process cannot."""
        return self in (ServiceState.PROVISIONING, ServiceState.UPDATING,
                        ServiceState.DEPROVISIONING)  # fmt: skip


class Operation(enum.StrEnum):
    """The operation an instance is in (or last went through), as Open Service Broker
    platforms poll it (``last_operation``)."""

    PROVISION = "provision"
    UPDATE = "update"
    DEPROVISION = "deprovision"
