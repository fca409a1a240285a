"""Person keys: the cross-institution person identifier never reaches storage.

``person_key = HMAC-SHA256(group_secret, person_id)``: the same person gets the same key in
every app (so integrated MAU counts them once), but without the secret nobody can test a
known identifier against the stored keys, as they could against a plain hash.
"""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["KeyMaker", "key_fingerprint", "person_key"]

_FINGERPRINT_LABEL = b"groupcloud analytics key fingerprint v1"


def person_key(secret: bytes, person_id: str) -> bytes:
    """The 32-byte pseudonymous key stored in place of ``person_id``."""
    return hmac.new(secret, person_id.encode(), hashlib.sha256).digest()


def key_fingerprint(secret: bytes) -> str:
    """A short public name of a secret (16 hex digits), stored with the event store so that
    ingesting with another secret is refused instead of silently counting every person twice."""
    return hmac.new(secret, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


class KeyMaker:
    """``person_key`` for whole columns: HMAC-SHA256 from precomputed pad states.

    HMAC is ``H((K ^ opad) || H((K ^ ipad) || m))``; the two keyed SHA-256 states are made
    once and copied per message, which is two to three times faster than ``hmac.new`` per
    row (measured: 1.8 µs against 4.7 µs a key on the project VM). A column is keyed once
    per *distinct* person id (a chunk repeats persons many times), then expanded.
    """

    def __init__(self, secret: bytes) -> None:
        block = hashlib.sha256().block_size
        key = hashlib.sha256(secret).digest() if len(secret) > block else secret
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def key(self, person_id: str) -> bytes:
        inner = self._inner.copy()
        inner.update(person_id.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def keys(self, person_ids: pa.Array | pa.ChunkedArray) -> pa.Array:
        """The 32-byte keys of a string column (no nulls), in its order."""
        encoded = pc.dictionary_encode(person_ids)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.unify_dictionaries().combine_chunks()
        inner_copy, outer_copy = self._inner.copy, self._outer.copy
        made = []
        for text in encoded.dictionary.to_pylist():
            inner = inner_copy()
            inner.update(text.encode())
            outer = outer_copy()
            outer.update(inner.digest())
            made.append(outer.digest())
        distinct = pa.array(made, pa.binary(32))
        return distinct.take(encoded.indices)
