"""The in-process cache and the JWK library, measured.

1. propagation: how long an invalidation published by one process takes to reach a cache in
   another (apps.core.cache over a throwaway redis-server): the "within a second" promise.
2. hit: ns per cache hit, ProcessCache.get against the lock + OrderedDict LRU it replaced.
3. jose: µs per key to encode a public JWK with its RFC 7638 thumbprint, and to parse one,
   jwcrypto (apps/keys/jose.py) against PyJWT's to_jwk/from_jwk plus a hand-written hash.

    .venv/bin/python -m benchmarks.caches_and_jose [--messages 200]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys, time
from benchmarks.caches_and_jose import configure
configure(sys.argv[1])
from apps.core.cache import ProcessCache, bus

class Reporting(ProcessCache):
    def on_message(self, key):
        print(f"{key} {time.monotonic()}", flush=True)

Reporting("bench", max_age=30, max_entries=10)
bus.ensure_started()
print("ready", flush=True)
sys.stdin.read()
"""


def configure(redis_url: str) -> None:
    import django
    from django.conf import settings

    settings.configure(REDIS_URL=redis_url, HEALTH_CHECK_TIMEOUT=2, DATABASES={})
    django.setup()


def propagation(messages: int) -> None:
    from tests.servers import Redis

    with tempfile.TemporaryDirectory() as base:
        redis = Redis(Path(base))
        redis.start()
        try:
            url = redis.url(0)
            configure(url)
            from apps.core.cache import publish

            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, url], cwd=ROOT, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert child.stdout is not None
            assert child.stdin is not None
            assert child.stdout.readline().strip() == "ready"
            delays = []
            for n in range(messages):
                sent = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process
                publish("bench", str(n))
                key, arrived = child.stdout.readline().split()
                assert key == str(n)
                delays.append((float(arrived) - sent) * 1000)
                time.sleep(0.005)
            child.stdin.close()
            child.wait(10)
        finally:
            redis.stop()
    delays.sort()
    print(
        f"propagation messages={messages} p50_ms={statistics.median(delays):.2f} "
        f"p99_ms={delays[int(len(delays) * 0.99) - 1]:.2f} max_ms={delays[-1]:.2f}"
    )


def hits(rounds: int = 200_000) -> None:
    from apps.core.cache import ProcessCache

    cache: ProcessCache[str] = ProcessCache("bench-hit", max_age=3600, max_entries=10_000)
    cache.put("client", "value")
    load = lambda previous: "value"  # noqa: E731
    started = time.perf_counter()
    for _ in range(rounds):
        cache.get("client", load)
    ours = (time.perf_counter() - started) / rounds * 1e9

    lock, lru = threading.Lock(), OrderedDict([("client", (time.monotonic() + 3600, "value"))])

    def before(client_id: str) -> str | None:  # apps/tokens/clients.py until this change
        now = time.monotonic()
        with lock:
            hit = lru.get(client_id)
            if hit is not None and hit[0] > now:
                lru.move_to_end(client_id)
                return hit[1]
        return None

    started = time.perf_counter()
    for _ in range(rounds):
        before("client")
    theirs = (time.perf_counter() - started) / rounds * 1e9
    print(f"hit process_cache_ns={ours:.0f} lock_lru_ns={theirs:.0f}")


def jose(rounds: int = 500) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    from apps.keys.jose import jwk_thumbprint, public_jwk, public_key_from_jwk

    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}

    def pyjwt_thumbprint(jwk: dict[str, str]) -> str:
        import base64

        canonical = json.dumps({m: jwk[m] for m in members[jwk["kty"]]}, separators=(",", ":"),
                               sort_keys=True)  # fmt: skip
        digest = hashlib.sha256(canonical.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    for name, key, algorithm in (
        ("es256", ec.generate_private_key(ec.SECP256R1()).public_key(), ECAlgorithm),
        ("rs256", rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
         RSAAlgorithm),
        ("eddsa", ed25519.Ed25519PrivateKey.generate().public_key(), OKPAlgorithm),
    ):  # fmt: skip
        jwk = public_jwk(key)
        pyjwt_jwk = algorithm.to_jwk(key, as_dict=True)
        assert jwk_thumbprint(jwk) == pyjwt_thumbprint(pyjwt_jwk)  # the same kid either way

        def timed(run: object) -> float:
            started = time.perf_counter()
            for _ in range(rounds):
                run()  # type: ignore[operator]
            return (time.perf_counter() - started) / rounds * 1e6

        encode_jwcrypto = timed(lambda key=key: jwk_thumbprint(public_jwk(key)))
        encode_pyjwt = timed(
            lambda key=key, a=algorithm: pyjwt_thumbprint(a.to_jwk(key, as_dict=True))
        )
        parse_jwcrypto = timed(lambda jwk=jwk: public_key_from_jwk(jwk))
        parse_pyjwt = timed(lambda jwk=pyjwt_jwk, a=algorithm: a.from_jwk(jwk))
        print(
            f"jose key={name} encode_thumbprint_us_jwcrypto={encode_jwcrypto:.1f} "
            f"encode_thumbprint_us_pyjwt={encode_pyjwt:.1f} parse_us_jwcrypto={parse_jwcrypto:.1f} "
            f"parse_us_pyjwt={parse_pyjwt:.1f}"
        )


def jws_sign(rounds: int = 500) -> None:
    """Signing the token endpoint's claim set: PyJWT's encode against apps.keys.jose's."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    from apps.keys.jose import jws_sign as ours

    claims = {"iss": "http://127.0.0.1:8000", "sub": "c" * 43, "aud": "http://127.0.0.1:8000",
              "exp": 1, "iat": 1, "nbf": 1, "jti": "j" * 22, "client_id": "c" * 43, "scope": "",
              "typ": "access", "ver": 1, "did": "", "sid": None, "login_at": None,
              "refresh_at": None, "uid": None, "provider": None, "orgs": [], "workspaces": [],
              "groups": [], "perms": []}  # fmt: skip
    for alg, key in (
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
    ):
        headers = {"kid": "k1", "typ": "at+jwt"}

        def best_of_five(run: object) -> float:
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(rounds // 5):
                    run()  # type: ignore[operator]
                runs.append((time.perf_counter() - started) / (rounds // 5) * 1e6)
            return min(runs)

        pyjwt_us = best_of_five(lambda k=key, a=alg, h=headers: jwt.encode(claims, k, a, headers=h))
        ours_us = best_of_five(
            lambda k=key, a=alg: ours(claims, private_key=k, alg=a, kid="k1", typ="at+jwt")
        )
        print(f"jws_sign alg={alg} pyjwt_us={pyjwt_us:.1f} jose_us={ours_us:.1f} "
              f"saved_us={pyjwt_us - ours_us:.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    os.chdir(ROOT)
    propagation(args.messages)
    hits()
    jose()
    jws_sign()


if __name__ == "__main__":
    main()
