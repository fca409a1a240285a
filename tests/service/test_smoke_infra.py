"""The fixtures themselves: both databases come up empty and migrated."""

from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import usage
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.support import World, check_consistency


def test_world_builds_and_is_consistent(rt: Runtime, world: World) -> None:
    rows = usage.usage(rt, SYSTEM).items
    capacity = {r.resource_class: r.capacity for r in rows}
    assert capacity == {"GPU": 4, "MEMORY_MB": 4 * 65536, "VCPU": 64}
    assert check_consistency(rt).ok
