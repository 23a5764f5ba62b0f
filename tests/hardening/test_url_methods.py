"""Every URL pattern, every method, anonymously: never a 5xx, and a 405 always says what is
allowed (RFC 9110 §15.5.6: Allow). A method a view does not take is a 405 before Django's
CSRF check, not its 403 (issue 20): PUT on /login was the CSRF page.

/readyz answers 503 by design while a dependency is down (apps/core/health.py)."""

from __future__ import annotations

import ipaddress
import itertools
import time
from collections.abc import Iterator
from re import _parser as sre  # type: ignore[attr-defined]
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from apps.core.methods import allowed_methods

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "JUNK")


def _sample(parsed: Any) -> str:
    """One string the parsed regex matches: a plausible value for each path converter (a
    UUID of zeros, 0 for an int, the first of the admin's app labels …)."""
    out = []
    for op, arg in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("x" if chr(arg) != "x" else "y")
        elif name == "ANY":
            out.append("x")
        elif name == "SUBPATTERN":
            out.append(_sample(arg[-1]))
        elif name == "BRANCH":
            out.append(_sample(arg[1][0]))
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, _high, item = arg
            out.append(_sample(item) * max(low, 1))
        elif name == "IN":
            out.append(_in(arg))
        elif name == "CATEGORY":
            out.append("1" if "DIGIT" in str(arg) else "a")
        elif name == "AT":
            continue
        else:
            raise AssertionError(f"no sample for {name} in a URL pattern")
    return "".join(out)


def _in(items: list[tuple[Any, Any]]) -> str:
    if str(items[0][0]) == "NEGATE":
        return "x"
    op, arg = items[0]
    if str(op) == "LITERAL":
        return chr(arg)
    if str(op) == "RANGE":
        return chr(arg[0])
    return _sample([(op, arg)])


def _patterns(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in resolver.url_patterns:
        regex = entry.pattern.regex.pattern
        here = prefix + _sample(sre.parse(regex))
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, here)
        else:
            yield "/" + here, entry


def _addresses() -> Iterator[str]:
    """A new client address for each request: the walk is not a flood from one IP, and the
    rate limits (apps/ratelimit) do not answer for the views."""
    base = int(ipaddress.IPv6Address("2001:db8::"))
    for n in itertools.count(1):
        yield str(ipaddress.IPv6Address(base + n))


ALL = list(_patterns(get_resolver()))


def test_the_walk_reaches_every_pattern() -> None:
    """Each sample resolves to its own pattern's view: the walk tests what it says. One is
    shadowed on purpose: idp/urls.py sends the admin's login page to the hosted one."""
    shadowed = [path for path, pattern in ALL if resolve(path).func is not pattern.callback]

    assert shadowed == ["/admin/login/"]
    assert len(ALL) > 300


@pytest.mark.django_db
def test_every_url_with_every_method_is_never_a_5xx_and_each_405_says_allow() -> None:
    http = HttpClient(enforce_csrf_checks=True, raise_request_exception=False)
    addresses = _addresses()
    started = time.monotonic()
    failures = []
    for (path, pattern), method in itertools.product(ALL, METHODS):
        answer = http.generic(method, path, REMOTE_ADDR=next(addresses))
        declared = allowed_methods(pattern.callback)
        csrf_checked = not getattr(pattern.callback, "csrf_exempt", False)
        if answer.status_code >= 500 and (path, answer.status_code) != ("/readyz", 503):
            failures.append(f"{method} {path}: {answer.status_code}")
        elif answer.status_code == 405 and not answer.get("Allow"):
            failures.append(f"{method} {path}: 405 without Allow")
        elif (
            declared is not None
            and csrf_checked
            and method not in declared
            and method not in ("GET", "HEAD", "OPTIONS")
            and answer.status_code not in (405, 429)  # 429: rate limited before any view
        ):
            failures.append(f"{method} {path}: {answer.status_code}, not 405 (takes {declared})")
    elapsed = time.monotonic() - started

    assert failures == [], "\n".join(failures)
    assert elapsed < 30, f"the walk took {elapsed:.1f} s"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/login", "GET, POST"),
        ("/.well-known/openid-configuration", "GET, HEAD"),
        ("/oauth/jwks", "GET, HEAD"),
        ("/console/", "GET, HEAD"),
    ],
)
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "JUNK"])
def test_a_method_the_page_does_not_take_is_405_with_allow(path, allow, method) -> None:
    answer = HttpClient(enforce_csrf_checks=True).generic(method, path, HTTP_ACCEPT="text/html")

    assert answer.status_code == 405
    assert answer["Allow"] == allow
    assert answer["X-Request-ID"]
    assert answer["X-Request-ID"].encode() in answer.content  # our error page, not CSRF's
