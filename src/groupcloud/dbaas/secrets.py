"""Credentials encrypted at rest: a managed database's password is stored sealed, so that a
copy of the control plane's database (a backup, a replica, a support dump) is not a copy of
every tenant's password.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) is authenticated: a token that was
changed, truncated or sealed with another key does not open, it raises. The key comes from
configuration, never from the database it protects.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["SecretBox", "SecretBoxError"]


class SecretBoxError(Exception):
    """The key is not a Fernet key, or a token does not open with the configured keys
    (tampered, truncated, or sealed with another key). The message never holds the key or
    the plaintext."""


class SecretBox:
    """Seals and opens short secrets (passwords, connection URLs) with a Fernet key.

    ``old_keys`` are keys that still open tokens sealed before a key rotation; new tokens are
    always sealed with ``key``, so rotating is: configure the new key with the old one in
    ``old_keys``, re-seal what is stored, then drop the old key.
    """

    __slots__ = ("_fernet",)

    def __init__(self, key: str, *, old_keys: Sequence[str] = ()) -> None:
        try:
            fernets = [Fernet(k) for k in (key, *old_keys)]
        except (ValueError, TypeError):  # binascii.Error is a ValueError
            raise SecretBoxError(
                "not a Fernet key: it must be 32 bytes, url-safe base64 encoded "
                "(SecretBox.generate_key() makes one)"
            ) from None  # the cause would quote the key
        self._fernet = MultiFernet(fernets)

    @staticmethod
    def generate_key() -> str:
        """A new random key, in the form configuration holds it."""
        return Fernet.generate_key().decode("ascii")

    def seal(self, plaintext: str) -> str:
        """``plaintext`` encrypted and authenticated; a new random IV each call, so equal
        secrets give different tokens (a reader of the table cannot tell they are equal)."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        """The plaintext ``token`` was sealed from; ``SecretBoxError`` if it does not open."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise SecretBoxError(
                "the token does not open with the configured key: it was tampered with, "
                "truncated, or sealed with another key"
            ) from None

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"
