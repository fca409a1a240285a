"""Everything a process needs to run use cases: settings, database, clock, and the
process's caches (capacity index, names, token checks, free spaces). Capabilities
depend on it; it depends on none of them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from groupcloud.config import Settings
from groupcloud.db.engine import Checkpointer, Database
from groupcloud.domain.clock import Clock, utcnow
from groupcloud.ipam.segments import Segments
from groupcloud.ipam.space import Space
from groupcloud.placement.zone_rules import BUILTIN_RULES, ZoneRule
from groupcloud.services.common.free_space import AddressSpace, FreeSpaceCache
from groupcloud.services.common.index_cache import IndexCache
from groupcloud.services.common.names import Names
from groupcloud.services.common.zone_rules_file import load_zone_rules

__all__ = ["Runtime"]


@dataclass
class Runtime:
    settings: Settings
    db: Database
    index: IndexCache
    names: Names
    spaces: FreeSpaceCache[Space] = field(default_factory=FreeSpaceCache, repr=False)
    """Free space per supernet and VPC (what is left to carve), as of the prefix's
    generation (``free_space``)."""
    addresses: FreeSpaceCache[AddressSpace] = field(default_factory=FreeSpaceCache, repr=False)
    """Free addresses per subnet and public pool, as of the prefix's generation."""
    segments: FreeSpaceCache[Segments] = field(default_factory=FreeSpaceCache, repr=False)
    """Free ids per segment pool, as of the pool's generation."""
    wakeup: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set when something may let a queued request in (a release, a new pending request);
    a worker in this process waits on it instead of sleeping its whole interval."""
    clock: Clock = field(default=utcnow, repr=False)
    """The time that requests are stamped with (created, started); the simulator sets a
    virtual clock here so that what it drives ages on its clock, not the wall's."""
    zone_rules: tuple[ZoneRule, ...] = BUILTIN_RULES
    """The placement rules for regulated data: built-in, plus the operator's file."""
    adapters: dict[str, object] = field(default_factory=dict, repr=False)
    """Provider adapters and the price book, built once per process by
    ``services.providers.catalog`` (they hold clients and connections)."""
    _checkpointer: Checkpointer | None = field(default=None, repr=False)

    @classmethod
    def open(cls, settings: Settings | None = None) -> Runtime:
        settings = settings or Settings()
        zone_rules = load_zone_rules(settings.zone_rules)  # before anything is opened
        db = Database(
            settings.resolved_database_url,
            pool_size=settings.db_pool_size,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )
        index = IndexCache(
            db,
            seed=settings.placement_seed,
            refresh_s=settings.index_refresh_s,
            policy=settings.placement_policy,
        )
        return cls(
            settings=settings,
            db=db,
            index=index,
            names=Names(db, settings.priority_cache_s),
            zone_rules=zone_rules,
        )

    def start_background(self) -> None:
        """Start what a long-running process (server, benchmark) needs besides requests:
        background SQLite checkpoints. Stopped by ``close``."""
        if self._checkpointer is None:
            self._checkpointer = self.db.start_checkpointer()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.db.dispose()
