"""Property-based tests (hypothesis) of every parser Tessera owns (issue 20, "Tools"): the
JWS access tokens and ID token hints we read back, client authentication (HTTP Basic, form
parameters, a proxy's client certificate header), the form and query parameters of each OAuth
endpoint, DPoP proofs, WebAuthn responses and the threat replay input. What each test holds:
hostile input gets the protocol's refusal, never a 5xx, never an exception of another kind,
never the raw input reflected.

Budgets. In the suite every test is derandomized (the same examples every run: not flaky) and
sized so that the whole package takes about a minute on a shared 2-core machine. For a longer,
random search set either of:

    FUZZ_EXAMPLES=5000 pytest tests/fuzz          # every test runs 5000 random examples
    HYPOTHESIS_PROFILE=long pytest tests/fuzz     # the same with 2000 examples

Both leave derandomize off (new examples each run) and print a failing example's
@reproduce_failure blob; add that input as an @example beside the test when fixing it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SUPPRESSED = [
    HealthCheck.too_slow,
    HealthCheck.function_scoped_fixture,
    HealthCheck.data_too_large,
]
_LONG_EXAMPLES = 2000  # HYPOTHESIS_PROFILE=long

settings.register_profile(
    "fuzz-suite", derandomize=True, deadline=None, database=None, suppress_health_check=_SUPPRESSED
)
settings.register_profile(
    "fuzz-long", deadline=None, database=None, suppress_health_check=_SUPPRESSED
)


def _long_examples() -> int | None:
    if os.environ.get("FUZZ_EXAMPLES"):
        return int(os.environ["FUZZ_EXAMPLES"])
    if os.environ.get("HYPOTHESIS_PROFILE") == "long":
        return _LONG_EXAMPLES
    return None


def budget(examples: int) -> settings:
    """The settings of one property: `examples` derandomized examples in the suite, or the
    long run's count, random, when FUZZ_EXAMPLES or HYPOTHESIS_PROFILE=long asks for one.
    Applied per test (not as the global profile) so the rest of the suite is untouched."""
    long = _long_examples()
    if long is None:
        return settings(settings.get_profile("fuzz-suite"), max_examples=examples)
    return settings(settings.get_profile("fuzz-long"), max_examples=long)
