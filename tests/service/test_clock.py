"""One clock: every use case stamps what it writes with the runtime's clock, never the
wall's, so one request carries one instant everywhere and time can be driven by a test
(or a simulation) without anything leaking in from the real time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from groupcloud.schemas.compute import QuotaSet
from groupcloud.schemas.network import IpCreate, SubnetCreate, SupernetCreate, VpcCreate
from groupcloud.schemas.tenancy import CompanyCreate, ProjectCreate
from groupcloud.services.audit.events import list_events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts, quotas
from groupcloud.services.compute.worker import run_round
from groupcloud.services.network import ips, prefixes
from groupcloud.services.tenancy import companies
from groupcloud.services.tenancy.tokens import SYSTEM
from groupcloud.services.zones import zones
from tests.service.helpers import all_pages, ask, who
from tests.support import build_world

START = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)
"""Years from the wall clock: a stamp taken from the wall could not fall among these."""


class Ticking:
    """A clock that moves one second per reading and remembers what it handed out."""

    def __init__(self) -> None:
        self.now = START
        self.issued: set[datetime] = set()

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        self.issued.add(self.now)
        return self.now

    def jump(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_every_row_and_event_is_stamped_by_the_runtime_clock(rt: Runtime) -> None:
    clock = Ticking()
    rt.clock = clock
    world = build_world(rt)
    dev = who(rt, world.bank_member)

    companies.create_company(rt, SYSTEM, CompanyCreate(slug="capital", name="Capital"))
    companies.create_project(rt, SYSTEM, "capital", ProjectCreate(slug="risk"))
    quotas.set_quota(rt, SYSTEM, "capital", "VCPU", QuotaSet(nominal=4))
    prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="corp", cidr="10.0.0.0/8"))
    prefixes.create_vpc(
        rt, SYSTEM, VpcCreate(name="core", supernet="corp", company="bank", prefixlen=20)
    )
    prefixes.create_subnet(rt, SYSTEM, "bank", "core", SubnetCreate(name="app", prefixlen=24))
    address = ips.allocate_ip(rt, SYSTEM, "bank", "app", IpCreate())
    ips.release_ip(rt, SYSTEM, address.id)
    kept = allocations.allocate(rt, dev, ask({"VCPU": 2, "MEMORY_MB": 512}))
    gone = allocations.release(rt, dev, kept.id)
    leased = allocations.allocate(rt, dev, ask({"VCPU": 2, "MEMORY_MB": 512}, lease_s=60))

    clock.jump(120)  # past the lease's end, on this clock only
    run_round(rt)
    expired = allocations.get_allocation(rt, SYSTEM, leased.id)

    stamps = [
        *(c.created_at for c in companies.list_companies(rt, SYSTEM).items),
        *(z.created_at for z in zones.list_zones(rt, SYSTEM)),
        *(h.created_at for h in hosts.list_hosts(rt, SYSTEM).items),
        ips.get_ip(rt, SYSTEM, address.id).created_at,
        gone.created_at,
        kept.started_at,
        gone.released_at,
        expired.released_at,
    ]
    events, _ = all_pages(lambda c: list_events(rt, SYSTEM, cursor=c, limit=500))
    stamps += [e.at for e in events]
    assert len(events) > 20
    assert all(s in clock.issued for s in stamps), [s for s in stamps if s not in clock.issued]
    assert expired.end_reason == "expired"
    assert expired.released_at is not None
    assert expired.released_at > START + timedelta(seconds=120)
