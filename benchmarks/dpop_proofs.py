"""DPoP proof validation (apps/tokens/dpop.py), measured: µs per proof for each algorithm a
proof may use, the RFC 9449 §4.3 checks in memory (dpop.check: parse, header, PyJWK, the
signature, claims, nonce, RFC 7638 thumbprint) and the thumbprint alone against jwcrypto's.
The jti replay cache (one Redis SET NX) is a round trip, not CPU, and is left out.

    IDP_DATA_DIR=/tmp/bench-dpop .venv/bin/python -m benchmarks.dpop_proofs [--rounds 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from jwcrypto.jwk import JWK  # noqa: E402

from apps.tokens import dpop  # noqa: E402
from tests.dpop.conftest import TOKEN, TOKEN_URL, DPoPKey  # noqa: E402


def _per_call_us(call: object, rounds: int) -> float:
    """Median of five runs of `rounds` calls, µs per call."""
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            call()  # type: ignore[operator]
        runs.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = parser.parse_args().rounds
    request = RequestFactory().post(TOKEN)
    for alg in settings.DPOP_SIGNING_ALGS:
        key = DPoPKey(alg)
        proof = key.proof("POST", TOKEN_URL)
        checked = _per_call_us(lambda: dpop.check(request, proof, nonce=True), rounds)  # noqa: B023
        print(f"check {alg:6} {checked:8.1f} µs per proof")
    jwk = DPoPKey("ES256").jwk
    ours = _per_call_us(lambda: dpop.thumbprint(jwk), rounds)
    theirs = _per_call_us(lambda: JWK(**jwk).thumbprint(), rounds)
    print(f"thumbprint ES256: ours {ours:.1f} µs, jwcrypto {theirs:.1f} µs")


if __name__ == "__main__":
    main()
