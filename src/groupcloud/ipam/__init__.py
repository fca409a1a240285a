"""IP address management: pure address arithmetic (no I/O)."""
