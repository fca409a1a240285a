"""A short-lived cache of successful token checks (see ``PrincipalCache``)."""

from __future__ import annotations

import time

from groupcloud.domain.tenancy import Principal

__all__ = ["PrincipalCache"]


class PrincipalCache:
    """Recent successful token checks of this process, for ``ttl_s`` seconds.

    Every API request authenticates; a short cache spares one database round trip per
    request. Only successes are cached (a wrong token is always checked), and a revoke
    clears the entry at once in the revoking process.
    """

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._revoked: set[int] = set()  # revocation is final: never cache these again

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, token_hash: str, principal: Principal) -> None:
        # A check that read the token just before a concurrent revoke committed must not
        # put it back for another ttl_s.
        if self._ttl_s > 0 and principal.token_id not in self._revoked:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[token_hash] = (principal, time.monotonic() + self._ttl_s)

    def forget(self, token_id: int) -> None:
        self._revoked.add(token_id)
        for key, (principal, _) in list(self._entries.items()):
            if principal.token_id == token_id:
                self._entries.pop(key, None)
