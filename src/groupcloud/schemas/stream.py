"""What ``groupcloud mau consume`` reports (also its ``--json`` output)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from groupcloud.schemas.analytics import BadRowOut

__all__ = ["ConsumeSummary"]


class ConsumeSummary(BaseModel):
    """One run of the JetStream consumer. ``bad_rows[].line`` is the message's stream
    sequence, so a bad message can be looked up on the server (``nats stream get``)."""

    stream: str
    durable: str
    messages: int = Field(description="Deliveries handled (a redelivered message counts again).")
    redelivered: int = Field(description="Deliveries JetStream made more than once.")
    loaded: int = Field(description="Events stored (their event_id was new).")
    duplicates: int = Field(description="Good events whose event_id was loaded before.")
    bad: int = Field(description="Messages refused (not a JSON object, or a bad event).")
    bad_rows: list[BadRowOut] = Field(default_factory=list)
    new_apps: list[str] = Field(default_factory=list)
    batches: int = Field(description="Ingestion transactions committed (then acked).")
    seconds: float
    busy_seconds: float = Field(
        description="From the first message fetched to the last batch acked (no idle wait)."
    )
    stopped: Literal["max_messages", "idle", "interrupted"] = Field(
        description="Why the run ended: --max-messages reached, --idle-exit seconds without a "
        "message, or a signal (Ctrl-C / SIGTERM) after the batch in hand was committed."
    )
