"""Compute capacity: hosts and inventories, quotas, allocations and their claims, the
scheduler cycle, reclaims, leases, idle reclaim, explanations, usage and the worker
that runs the background rounds."""
