"""Person keys: the cross-institution person identifier never reaches storage.

``person_key = HMAC-SHA256(group_secret, person_id)``: the same person gets the same key in
every app (so integrated MAU counts them once), but without the secret nobody can test a
known identifier against the stored keys, as they could against a plain hash.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["key_fingerprint", "person_key"]

_FINGERPRINT_LABEL = b"groupcloud analytics key fingerprint v1"


def person_key(secret: bytes, person_id: str) -> bytes:
    """The 32-byte pseudonymous key stored in place of ``person_id``."""
    return hmac.new(secret, person_id.encode(), hashlib.sha256).digest()


def key_fingerprint(secret: bytes) -> str:
    """A short public name of a secret (16 hex digits), stored with the event store so that
    ingesting with another secret is refused instead of silently counting every person twice."""
    return hmac.new(secret, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]
