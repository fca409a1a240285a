"""The published OpenAPI document against the server it describes, with schemathesis
(the CLI, on a real server with the demo group, on SQLite and PostgreSQL): no 500s,
only documented status codes and content types, responses matching their schemas,
bad input refused, 405s naming the right methods. Zero findings is the bar.

Bounded (examples per operation, a fixed seed, a time budget) so that the suite stays
well under its limit; ``SCHEMATHESIS_EXAMPLES`` raises the count for a longer hunt."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from groupcloud.services.common.runtime import Runtime
from groupcloud.services.demo.seed import seed_demo
from tests.conftest import open_runtime
from tests.support import start_thread_server

HERE = Path(__file__).parent
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance,unsupported_method,"
    "negative_data_rejection"
)
EXAMPLES = os.environ.get("SCHEMATHESIS_EXAMPLES", "6")


@pytest.fixture
def demo(database_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, str]]:
    rt = open_runtime(database_url, tmp_path, analytics_secret="s" * 40, ip_quarantine_s=0)
    try:
        token = seed_demo(rt).admin_token
        assert token is not None
        yield rt, token
    finally:
        rt.close()


@pytest.mark.slow
def test_the_server_does_what_its_openapi_document_says(
    demo: tuple[Runtime, str], tmp_path: Path
) -> None:
    rt, token = demo
    with start_thread_server(rt) as url:
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "--no-color",
                "--config-file",
                str(HERE / "schemathesis.toml"),
                "run",
                f"{url}/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                CHECKS,
                "--max-examples",
                EXAMPLES,
                "--seed",
                "20261203",
                "--generation-deterministic",
                "--workers",
                "1",
                "--request-timeout",
                "30",
                # revoking tokens at random would revoke the run's own token (tested in
                # tests/api/test_tokens.py)
                "--exclude-path",
                "/v1/tokens/{token_id}",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    summary = done.stdout[done.stdout.find("SUMMARY") :] if "SUMMARY" in done.stdout else ""
    assert done.returncode == 0, (summary or done.stdout[-4000:]) + done.stderr[-2000:]
    assert "Tested:" in summary
