"""Analytics of the group's app platforms: activity ingest (files, API, NATS), exact and
sketched MAU reports, trends and forecasts, KPI scorecards, capacity plans and charts.
These use cases work on the activity store (``groupcloud.activitystore``), not on the
control-plane database (capacity plans only read the pool's host count)."""
