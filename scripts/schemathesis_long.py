"""Schemathesis over the admin API for longer than the suite's budget (issue 20, "Tools").

    .venv/bin/python scripts/schemathesis_long.py --max-examples 200 --hypothesis-seed 7
    .venv/bin/python scripts/schemathesis_long.py --operation "/users/{user_id}" -n 500

Runs tests/schema/test_admin_api_schema.py (the suite's real servers, seeded rows, each
request rolled back) with `--max-examples` positive and as many negative examples per
operation, from a seed (random unless given; printed, so a run can be repeated), and
`--stateful-scenarios` sequences of linked calls; then prints each operation's statuses and
every failure with its curl reproduction. Exit status 1 when anything failed. The suite
runs the same with 3 examples and 8 scenarios, derandomized.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/schema/test_admin_api_schema.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--max-examples", type=int, default=100, help="per operation, mode")
    parser.add_argument("--hypothesis-seed", type=int, default=None, help="random if absent")
    parser.add_argument(
        "--stateful-scenarios", type=int, default=100, help="sequences of linked calls"
    )
    parser.add_argument(
        "--operation", default="", help="only operations whose label contains this text"
    )
    args = parser.parse_args()
    seed = args.hypothesis_seed if args.hypothesis_seed is not None else random.randrange(2**32)  # noqa: S311 - a test seed

    with tempfile.TemporaryDirectory() as scratch:
        summary_path = Path(scratch) / "summary.json"
        stateful_path = Path(scratch) / "stateful.json"
        env = os.environ | {
            "TESSERA_SCHEMATHESIS_MAX_EXAMPLES": str(args.max_examples),
            "TESSERA_SCHEMATHESIS_SEED": str(seed),
            "TESSERA_SCHEMATHESIS_SUMMARY": str(summary_path),
            "TESSERA_SCHEMATHESIS_OPERATIONS": args.operation,
            "TESSERA_SCHEMATHESIS_STATEFUL_SCENARIOS": str(args.stateful_scenarios),
            "TESSERA_SCHEMATHESIS_STATEFUL_SUMMARY": str(stateful_path),
        }
        print(f"schemathesis: {args.max_examples} examples per operation and mode, seed {seed}")
        started = time.monotonic()
        run = subprocess.run(  # noqa: S603 - our own test, this interpreter
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=0", TEST],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.monotonic() - started
        if not summary_path.exists():  # the run ended before any operation was tried
            print(run.stdout[-5000:], run.stderr[-5000:], sep="\n")
            return 2
        outcomes = json.loads(summary_path.read_text())
        stateful = json.loads(stateful_path.read_text()) if stateful_path.exists() else None

    requests = sum(o["examples"] for o in outcomes.values())
    failing = {label: o for label, o in outcomes.items() if o["failures"]}
    for label, outcome in sorted(outcomes.items()):
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(outcome["statuses"].items()))
        mark = "FAIL" if outcome["failures"] else "ok  "
        print(f"{mark} {label}  {outcome['examples']} in {outcome['seconds']}s: {statuses}")
    for label, outcome in sorted(failing.items()):
        print(f"\n=== {label}")
        print("\n".join(outcome["failures"]))
    if stateful is not None:
        for failure in stateful["failures"]:
            print(f"\n=== linked calls\n{failure}")
        print(
            f"\nlinked calls: {stateful['scenarios']} scenarios, "
            f"{sum(stateful['steps'].values())} calls, {len(stateful['failures'])} failures"
        )
    print(
        f"{len(outcomes)} operations, {requests} requests, "
        f"{len(failing)} operations with failures; seed {seed}; "
        f"{elapsed:.0f}s in all (the suite's servers started, rows seeded)"
    )
    return 1 if failing or (stateful and stateful["failures"]) else 0


if __name__ == "__main__":
    sys.exit(main())
