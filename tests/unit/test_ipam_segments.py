"""The segment engine against a model that enumerates every id (small pools only)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from groupcloud.ipam.segments import Segments, SegmentsError, SegmentsExhausted


def test_lowest_free_ids_come_first_and_released_ones_merge_back() -> None:
    pool = Segments(100, 104, held=[101])
    assert [pool.lowest(), pool.lowest(), pool.lowest()] == [100, 102, 103]
    pool.release(101)
    assert pool.runs() == [(101, 101), (104, 104)]
    pool.release(102)
    pool.release(103)
    assert pool.runs() == [(101, 104)]
    assert pool.free == 4


def test_refusals_name_the_id() -> None:
    pool = Segments(1, 3)
    pool.claim(2)
    with pytest.raises(SegmentsError, match="2 is held"):
        pool.claim(2)
    with pytest.raises(SegmentsError, match="outside 1-3"):
        pool.claim(4)
    with pytest.raises(SegmentsError, match="1 is free"):
        pool.release(1)
    pool.lowest()
    pool.lowest()
    with pytest.raises(SegmentsExhausted):
        pool.lowest()


def test_a_pool_of_every_vni_is_not_enumerated() -> None:
    pool = Segments(1, 2**24 - 1, held=range(1, 1001))
    assert pool.lowest() == 1001
    assert pool.free == 2**24 - 1 - 1001
    assert len(pool.runs()) == 1


ops = st.lists(
    st.tuples(st.sampled_from(["lowest", "claim", "release"]), st.integers(0, 40)), max_size=80
)


@given(st.integers(0, 20), st.integers(0, 20), st.sets(st.integers(0, 40)), ops)
def test_matches_a_set_of_free_ids(
    first: int, width: int, held: set[int], steps: list[tuple[str, int]]
) -> None:
    last = first + width
    held = {v for v in held if first <= v <= last}
    pool = Segments(first, last, held)
    free = set(range(first, last + 1)) - held
    for op, value in steps:
        if op == "lowest":
            if free:
                assert pool.lowest() == min(free)
                free.remove(min(free))
            else:
                with pytest.raises(SegmentsExhausted):
                    pool.lowest()
        elif op == "claim":
            if value in free:
                assert pool.claim(value) == value
                free.remove(value)
            else:
                with pytest.raises(SegmentsError):
                    pool.claim(value)
        elif first <= value <= last and value not in free:
            pool.release(value)
            free.add(value)
        else:
            with pytest.raises(SegmentsError):
                pool.release(value)
        assert pool.free == len(free)
        runs = pool.runs()
        assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(runs))  # merged
        assert {v for s, e in runs for v in range(s, e + 1)} == free
