"""Simulations that drive the server's own code.

Without a database: trace loading and the packing experiment of the ATC'23 paper
("Beware of Fragmentation"; ``trace``, ``pack``, ``resample``). With a throwaway SQLite
database per run: the discrete-event simulator of separate clouds against the group
cloud (``demand``, ``workload``, ``scenario``, ``des``, ``search``, ``experiment``,
``report``), which calls the services (placement, quotas, scheduler, reclaim) on a
virtual clock; it sits above the services, not beside the pure engines."""
