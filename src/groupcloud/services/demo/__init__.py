"""The demo group that ``make run`` seeds."""
