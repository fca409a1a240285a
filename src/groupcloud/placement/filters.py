"""Filters: one class per rule, each answering fits / does not fit for many hosts at once.

A filter returns a boolean mask over the index's hosts (or over the rows ``rows`` only,
when the pipeline re-checks hosts whose usage changed). Its ``reason`` is the stable
constant reported when it removes hosts, so a refusal can say which rule removed how
many hosts (Nomad's "filtered by constraint" counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from groupcloud.domain.allocation import PlacementSpec
from groupcloud.placement.index import CapacityIndex, Rows

__all__ = [
    "AntiAffinityFilter",
    "Filter",
    "GpuModelFilter",
    "GpuShareFilter",
    "Mask",
    "ResourceFilter",
    "SchedulableFilter",
    "TraitsFilter",
    "ZoneFilter",
]

Mask = NDArray[np.bool_]
A = TypeVar("A", bound=np.generic)


def _take(values: NDArray[A], rows: Rows | None) -> NDArray[A]:
    return values if rows is None else values[rows]


class Filter(Protocol):
    """A placement rule. ``static`` rules never change without an operator's action
    (zone, traits, host size); the others depend on what is in use right now."""

    @property
    def name(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def static(self) -> bool: ...

    def mask(self, index: CapacityIndex, spec: PlacementSpec, rows: Rows | None = None) -> Mask: ...


class SchedulableFilter:
    name = "schedulable"
    reason = "host_draining"
    static = False

    def mask(self, index: CapacityIndex, spec: PlacementSpec, rows: Rows | None = None) -> Mask:
        return _take(index.schedulable, rows)


class ZoneFilter:
    """The host is in the zone the request names (if any) and in one of the zones the
    placement rules allow it (if they restrict it)."""

    name = "zone"
    reason = "zone_not_allowed"
    static = True

    def mask(self, index: CapacityIndex, spec: PlacementSpec, rows: Rows | None = None) -> Mask:
        allowed = set(index.zone_ids) if spec.zones is None else spec.zones & index.zone_ids.keys()
        if spec.zone is not None:
            allowed &= {spec.zone}
        ids = [index.zone_ids[z] for z in allowed]
        result: Mask = np.isin(_take(index.zone_of, rows), ids)
        return result


class TraitsFilter:
    name = "traits"
    reason = "missing_trait"
    static = True

    def mask(self, index: CapacityIndex, spec: PlacementSpec, rows: Rows | None = None) -> Mask:
        size = len(index) if rows is None else len(rows)
        result: Mask = np.ones(size, dtype=np.bool_)
        for trait in spec.required_traits:
            col = index.trait_col.get(trait)
            if col is None:
                return np.zeros(size, dtype=np.bool_)
            result &= _take(index.traits[col], rows)
        return result


class AntiAffinityFilter:
    name = "anti_affinity"
    reason = "anti_affinity"
    static = False

    def mask(self, index: CapacityIndex, spec: PlacementSpec, rows: Rows | None = None) -> Mask:
        keep: Mask = np.ones(len(index), dtype=np.bool_)
        keep[[index.row_of[h] for h in spec.exclude_hosts if h in index.row_of]] = False
        return _take(keep, rows)


@dataclass(frozen=True, slots=True)
class ResourceFilter:
    """Enough free capacity of one resource class for one unit of the request."""

    resource_class: str
    static: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return f"resources:{self.resource_class}"

    @property
    def reason(self) -> str:
        return f"insufficient_{self.resource_class.lower()}"

    def mask(self, index: CapacityIndex, spec: PlacementSpec, rows: Rows | None = None) -> Mask:
        col = index.rc_col.get(self.resource_class)
        if col is None:
            return np.zeros(len(index) if rows is None else len(rows), dtype=np.bool_)
        result: Mask = _take(index.free[col], rows) >= spec.per_unit[self.resource_class]
        return result


class GpuModelFilter:
    """The host's GPU model (trait ``gpu_model=NAME``) is one the request accepts."""

    name = "gpu_model"
    reason = "gpu_model_not_allowed"
    static = True

    def mask(self, index: CapacityIndex, spec: PlacementSpec, rows: Rows | None = None) -> Mask:
        ids = [index.gpu_model_ids[m] for m in spec.gpu_models if m in index.gpu_model_ids]
        result: Mask = np.isin(_take(index.gpu_model, rows), ids)
        return result


class GpuShareFilter:
    """Some GPU device of the host has the share of one device a unit asks for free."""

    name = "resources:GPU_SHARE"
    reason = "insufficient_gpu_share"
    static = False

    def mask(self, index: CapacityIndex, spec: PlacementSpec, rows: Rows | None = None) -> Mask:
        if index.gpu_col is None:
            return np.zeros(len(index) if rows is None else len(rows), dtype=np.bool_)
        devices = index.devices if rows is None else index.devices[rows]
        result: Mask = devices.max(axis=1) >= spec.gpu_share
        return result
