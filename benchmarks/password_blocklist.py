"""The operator's password blocklist (apps/accounts/passwords.py BlocklistValidator): memory
and lookup time of its sorted array of 64-bit digests against the obvious Python set of the
passwords themselves (Django's CommonPasswordValidator keeps a set of strings).

    .venv/bin/python -m benchmarks.password_blocklist [--entries 1000000]

Prints key=value lines: bytes per entry (tracemalloc, after loading) and microseconds per
lookup, for each way.
"""

from __future__ import annotations

import argparse
import gzip
import os
import secrets
import tempfile
import time
import tracemalloc
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    args = parser.parse_args()
    django.setup()
    from apps.accounts import passwords

    words = [secrets.token_urlsafe(9) for _ in range(args.entries)]  # 12 characters each
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "list.txt.gz"
        file.write_bytes(gzip.compress("\n".join(words).encode()))
        validator = passwords.BlocklistValidator(file)

        started = time.perf_counter()
        passwords._digests(file)
        load_s = time.perf_counter() - started  # without tracemalloc, which slows it
        passwords.blocklist_reload()
        tracemalloc.start()
        digests = passwords._digests(file)
        array_bytes, array_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        tracemalloc.start()
        as_set = {w.casefold() for w in passwords._lines(file)}
        set_bytes, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        probes = [secrets.token_urlsafe(9) for _ in range(args.lookups)]
        started = time.perf_counter()
        for probe in probes:
            validator.validate(probe)
        array_us = (time.perf_counter() - started) / len(probes) * 1e6
        started = time.perf_counter()
        for probe in probes:
            _ = probe.strip().casefold() in as_set
        set_us = (time.perf_counter() - started) / len(probes) * 1e6

    print(f"entries={len(digests)}")
    print(f"load_seconds={load_s:.2f}")
    print(f"array_bytes_per_entry={array_bytes / len(digests):.1f}")
    print(f"array_peak_bytes_per_entry={array_peak / len(digests):.1f}")
    print(f"set_of_strings_bytes_per_entry={set_bytes / len(as_set):.1f}")
    print(f"array_lookup_us={array_us:.2f}")
    print(f"set_lookup_us={set_us:.2f}")
    print(f"memory_ratio_set_over_array={set_bytes / max(array_bytes, 1):.1f}")


if __name__ == "__main__":
    main()
