"""Command line (Typer + Rich): local administration and an HTTP client of the API."""
