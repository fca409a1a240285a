"""``Idempotency-Key``: what makes two requests "the same" (the body plus what the path
names), so a retry returns the first result and a reused key with another body is
refused."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

__all__ = ["request_hash"]


def request_hash(body: BaseModel, **context: str) -> str:
    """SHA-256 of the body and the names the path gives (company, subnet, ...)."""
    canonical = json.dumps(
        {**body.model_dump(mode="json"), **context}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
