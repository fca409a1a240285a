"""groupcloud's claim benchmark next to OpenStack Placement's, in the same session.

Runs ../shared/bench/placement_peer.py (OpenStack Placement 16, in-process on SQLite) and
benchmarks/claims.py in service and HTTP mode with the same host and request shape, and
prints the ratios. Absolute figures on a shared machine drift; the ratio of two runs made
side by side is what to compare.

    python benchmarks/compare_peer.py --hosts 1000 --claims 200 [--peer PATH] [--repeat N]

The last line printed is one JSON object: both sides' results, the ratios, the failed
claims of each side, the command and when it ran (UTC), which is what the README's
figures must quote.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def last_json(command: list[str]) -> dict[str, Any]:
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    print(done.stdout.strip().splitlines()[0], flush=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="groupcloud runs per mode (median)")
    parser.add_argument(
        "--peer",
        type=Path,
        default=Path("../shared/bench/placement_peer.py"),
        help="the peer script (default: ../shared/bench/placement_peer.py from the project root)",
    )
    args = parser.parse_args()
    if not args.peer.exists():
        raise SystemExit(f"peer benchmark not found at {args.peer}; pass --peer PATH")

    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    shape = ["--hosts", str(args.hosts), "--claims", str(args.claims)]
    peer = last_json([sys.executable, str(args.peer), *shape, "--json"])
    ours = {
        mode: last_json(
            [
                sys.executable,
                str(HERE / "claims.py"),
                *shape,
                "--mode",
                mode,
                "--repeat",
                str(args.repeat),
            ]
        )
        for mode in ("service", "http")
    }
    ratios = {mode: round(r["claims_per_s"] / peer["claims_per_s"], 1) for mode, r in ours.items()}
    for mode, ratio in ratios.items():
        print(f"{mode}: {ours[mode]['claims_per_s']} claims/s vs {peer['claims_per_s']} = {ratio}x")
    failed = {"peer": int(peer.get("failed", 0)), **{m: int(r["failed"]) for m, r in ours.items()}}
    command = shlex.join(["python", "benchmarks/compare_peer.py", *sys.argv[1:]])
    print(json.dumps({"benchmark": "compare_peer", "measured_at": measured_at, "command": command,
                      "hosts": args.hosts, "claims": args.claims, "peer": peer, "groupcloud": ours,
                      "ratio": ratios, "failed": failed}))  # fmt: skip


if __name__ == "__main__":
    main()
