"""HTTP interface (FastAPI): parse, call one service, render."""
