"""Hostile inputs shared by the fuzz tests: JSON of every shape, base64url segments that are
and are not JSON, compact-JWS-looking strings, and text with control characters, surrogates,
invalid percent-escapes and huge lengths."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

# Integers past 64 bits and past Python's 4300-digit str limit, floats of every kind
# (json.dumps writes NaN and Infinity, which RFC 8259 does not allow).
huge_ints = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.sampled_from([-(2**63), 2**1024, 10**400, -(10**400)]),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    huge_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)

# Text a client may send: any code point except lone surrogates (not encodable in a request),
# control characters and NUL included.
hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=10),
    st.sampled_from(["\x00", "a\x00b", "<script>alert(1)</script>", "%", "%zz", "%C3%28",
                     "%ff%fe", "%00", "../../", "\u202e", "\ufeff", "a" * 10_000]),
)  # fmt: skip
# Text with lone surrogates too: only for parsers called directly (no request can carry it).
any_text = st.text(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=40)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8", "surrogatepass")


# A segment of a compact JWS: base64url of JSON (usually an object), of arbitrary bytes, of
# deeply nested arrays, or characters outside base64url, padding and lengths ≡ 1 (mod 4).
segments = st.one_of(
    json_objects.map(lambda value: b64url(json_bytes(value))),
    json_values.map(lambda value: b64url(json_bytes(value))),
    st.binary(max_size=64).map(b64url),
    st.just(b64url(b"[" * 5000)),
    st.from_regex(r"[A-Za-z0-9_\-=+/.~ ]{0,30}", fullmatch=True),
    st.text(max_size=12),
)
compact_jws = st.one_of(
    st.tuples(segments, segments, segments).map(".".join),
    st.lists(segments, max_size=5).map(".".join),
    st.text(max_size=60),
)


def mostly(value: Any, otherwise: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`value` about three times in four: deep checks are reached only past the early ones."""
    return st.sampled_from([True] * 3 + [False]).flatmap(
        lambda keep: st.just(value) if keep else otherwise
    )
