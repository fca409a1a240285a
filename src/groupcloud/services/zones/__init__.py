"""Zones: the placement domains that hosts (and address space) belong to."""
