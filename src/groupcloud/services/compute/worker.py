"""The worker: the scheduler cycle, reclaims, lease expiry, idle reclaim, the
provisioner of external instances and the catalog services' unfinished operations, in
rounds.

Runs as its own process (``groupcloud worker``) and inside ``groupcloud serve
--worker`` (what ``make run`` starts for the embedded demo). Only the leader acts
(``db.leader.Leadership``); the others wait and take over within one interval of the
leader's death. A round in this process is woken early by a release or a queued request
(``Runtime.wakeup``); other processes' changes are seen at the next round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from groupcloud.db.leader import Leadership
from groupcloud.services.catalog import lifecycle
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import idle, leases, reclaims, scheduler
from groupcloud.services.providers import provisioner

__all__ = ["Round", "Worker", "run_round", "run_round_as_leader"]

log = logging.getLogger("groupcloud.worker")


@dataclass
class Round:
    """What one round did."""

    reclaimed: int = 0
    lease_warnings: int = 0
    expired: int = 0
    idle_flagged: int = 0
    idle_released: int = 0
    admitted: int = 0
    borrowed: int = 0
    reclaims_started: int = 0
    pending: int = 0
    provisioned: int = 0
    """External: instances created, deleted, re-planned, failed, adopted or cleaned up."""
    services: int = 0
    """Catalog services whose unfinished operation moved on (provisioned, failed, gone)."""

    @property
    def busy(self) -> bool:
        return any((self.reclaimed, self.lease_warnings, self.expired, self.idle_flagged,
                    self.idle_released, self.admitted, self.reclaims_started,
                    self.provisioned, self.services))  # fmt: skip


def run_round(rt: Runtime, now: datetime | None = None) -> Round:
    """One round: end due reclaims, leases and idle allocations first (they free capacity),
    then let the queue in."""
    now = now or rt.clock()
    out = Round()
    out.reclaimed = reclaims.finish_due(rt, now)
    out.lease_warnings, out.expired = leases.tick(rt, now)
    out.idle_flagged, out.idle_released = idle.tick(rt, now)
    cycle = scheduler.run_cycle(rt, now)
    out.admitted, out.borrowed = cycle.admitted, cycle.borrowed
    out.reclaims_started, out.pending = cycle.reclaims_started, cycle.pending
    out.reclaims_started += reclaims.start_zone_reclaims(rt, now)
    out.provisioned = provisioner.step(rt, now).changes
    out.services = lifecycle.sweep(rt, now)
    return out


def run_round_as_leader(rt: Runtime) -> Round | None:
    """One round if this process can take leadership now (None: another worker holds it),
    for ``groupcloud worker --once``."""
    lead = Leadership(rt.db)
    if not lead.try_acquire():
        return None
    try:
        return run_round(rt)
    finally:
        lead.release()


class Worker:
    """Rounds under leadership until ``stop()``."""

    def __init__(
        self,
        rt: Runtime,
        *,
        interval_s: float | None = None,
        on_round: Callable[[Round], None] | None = None,
        on_leadership: Callable[[bool], None] | None = None,
    ) -> None:
        self.rt = rt
        self.interval_s = interval_s if interval_s is not None else rt.settings.worker_interval_s
        self.leadership = Leadership(rt.db)
        self._on_round = on_round
        self._on_leadership = on_leadership
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Loop in this thread until ``stop()``."""
        leading = False
        try:
            while not self._stopped.is_set():
                now_leading = self.leadership.try_acquire()
                if now_leading != leading:
                    leading = now_leading
                    log.info("worker %s leadership", "took" if leading else "lost")
                    if self._on_leadership:
                        self._on_leadership(leading)
                if leading:
                    try:
                        done = run_round(self.rt)
                    except Exception:  # a failed round is logged and retried next round
                        log.exception("worker round failed")
                    else:
                        if self._on_round:
                            self._on_round(done)
                        if done.admitted or done.reclaimed or done.expired:
                            continue  # more may fit now: go again at once
                self.rt.wakeup.wait(self.interval_s)
                self.rt.wakeup.clear()
        finally:
            self.leadership.release()

    def start(self) -> None:
        """Run in a daemon thread (inside ``serve``)."""
        self._thread = threading.Thread(target=self.run, name="groupcloud-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self.rt.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
