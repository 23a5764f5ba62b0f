"""The password policy: NIST SP 800-63B §5.1.1.2 (memorized secret verifiers), as Django
password validators (settings.AUTH_PASSWORD_VALIDATORS, checked by validate_password).

- At least PASSWORD_MIN_LENGTH characters (12 by default; 800-63B: at least 8) and at most
  PASSWORD_MAX_LENGTH (128 by default; 800-63B: at least 64 must be accepted). Length is
  counted in Unicode code points (800-63B: "each Unicode code point SHALL be counted as a
  single character").
- No composition rules (800-63B: "Verifiers SHOULD NOT impose other composition rules (e.g.,
  requiring mixtures of different character types …)"). Django's NumericPasswordValidator is
  one (it demands a character that is not a digit) and is not used: a long all-digit
  password is as good as its length, and the common ones are on the lists below.
- Refused when on a list of passwords known to attackers (800-63B: "passwords obtained from
  previous breach corpuses", "commonly-used, expected, or compromised values"): Django's
  list of 20 000 common passwords and, optionally, the operator's own list
  (PASSWORD_BLOCKLIST_FILE, e.g. a Have I Been Pwned extract).
- Not too close to the person's e-mail address or name (800-63B: "context-specific words,
  such as the name of the service, the username"): Django's UserAttributeSimilarityValidator.
- Not built on the name of the service or its organization (the same words of 800-63B;
  ASVS 5.0 6.1.2 / 6.2.11 ask for the list to be documented): ContextWordsValidator.

Each message says what to do instead (800-63B: "the verifier SHALL advise the subscriber
that they need to select a different secret … and the reason").

Unicode normalization (800-63B: the verifier SHOULD apply NFKC or NFKD before hashing) is
NOT applied here: hashes already stored were made from the password as typed, so
normalizing would have to happen in the hasher, for new hashes and as a fallback on
verification. Until then a password is hashed exactly as typed, which is what every
browser sends again the next time.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import re
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError

KNOWN_MESSAGE = (
    "This password is on a list of passwords known to attackers (common or exposed in a data "
    "breach). Choose another: a few unrelated words make a long password that is easy to "
    "remember."
)


class MinimumLengthValidator:
    def __init__(self, min_length: int = 12) -> None:
        self.min_length = min_length

    def validate(self, password: str, user: Any = None) -> None:
        if len(password) < self.min_length:
            raise ValidationError(
                f"Use at least {self.min_length} characters (this one has {len(password)}). "
                "A few unrelated words make a long password that is easy to remember.",
                code="password_too_short",
            )

    def get_help_text(self) -> str:
        return f"At least {self.min_length} characters; any characters, spaces included."


class MaximumLengthValidator:
    """A bound on what is hashed (argon2id's cost grows with its input)."""

    def __init__(self, max_length: int = 128) -> None:
        self.max_length = max_length

    def validate(self, password: str, user: Any = None) -> None:
        if len(password) > self.max_length:
            raise ValidationError(
                f"Use at most {self.max_length} characters (this one has {len(password)}).",
                code="password_too_long",
            )

    def get_help_text(self) -> str:
        return f"At most {self.max_length} characters."


class UserAttributeSimilarityValidator(password_validation.UserAttributeSimilarityValidator):
    """Django's, comparing with the e-mail address and the name, saying what to do."""

    def __init__(self, max_similarity: float = 0.7) -> None:
        super().__init__(user_attributes=("email", "name"), max_similarity=max_similarity)

    def get_error_message(self) -> str:
        return "This password is too close to your %(verbose_name)s. Choose one that is not."

    def get_help_text(self) -> str:
        return "Not close to your e-mail address or name."


class CommonPasswordValidator(password_validation.CommonPasswordValidator):
    """Django's list of 20 000 common passwords, with a message that says what to do."""

    def get_error_message(self) -> str:
        return KNOWN_MESSAGE

    def get_help_text(self) -> str:
        return "Not a commonly used password."


# ASVS 5.0 6.1.2 / 6.2.11 (NIST SP 800-63B §5.1.1.2: "context-specific words, such as the
# name of the service, the username, and derivatives thereof"): the documented list is the
# product's name, IDP_SITE_NAME, the labels of the issuer's host name and
# IDP_PASSWORD_CONTEXT_WORDS; each word of at least CONTEXT_WORD_MIN letters (shorter ones
# would refuse too much by chance). A password is refused when, once every context word in it
# is taken away (also written with look-alike digits and signs: "T3ss3r@"), fewer than
# CONTEXT_REMAINDER_MIN letters are left: "Tessera2026!" is the word and a year, "tessera
# mosaic garden" is a password of its own.
PRODUCT_NAME = "Tessera"
CONTEXT_WORD_MIN = 4
CONTEXT_REMAINDER_MIN = 6
# Look-alikes read as the letter they stand for; "1" and "|" as both i and l.
_LOOKALIKES = (
    str.maketrans("01!|34@5$7+89", "oiiieaasstt" + "bg"),
    str.maketrans("01!|34@5$7+89", "oliieaasstt" + "bg"),
)


def context_words() -> list[str]:
    """The documented context-specific words, lower case, letters only, longest first."""
    phrases = [PRODUCT_NAME, settings.SITE_NAME, *settings.PASSWORD_CONTEXT_WORDS]
    host = urlsplit(settings.ISSUER).hostname or ""
    phrases += re.split(r"[.\-]", host)
    found: set[str] = set()
    for phrase in phrases:
        runs = re.findall(r"[^\W\d_]+", phrase.casefold())
        found.update(run for run in runs if len(run) >= CONTEXT_WORD_MIN)
        joined = "".join(runs)  # "Acme Corp" is also "acmecorp"
        if len(joined) >= CONTEXT_WORD_MIN:
            found.add(joined)
    return sorted(found, key=lambda word: (-len(word), word))


def context_words_in(password: str) -> tuple[list[str], int]:
    """The context words found in `password` and how many of its letters are not part of
    one."""
    folded = password.casefold()
    if len(folded) != len(password):  # a case fold that changes length ("ß" → "ss")
        folded = password.lower()
    covered = [False] * len(folded)
    hits: list[str] = []
    words = context_words()
    for table in _LOOKALIKES:
        text = folded.translate(table)
        for word in words:
            start = text.find(word)
            while start != -1:
                if word not in hits:
                    hits.append(word)
                for index in range(start, start + len(word)):
                    covered[index] = True
                start = text.find(word, start + len(word))
    left = sum(1 for char, hit in zip(folded, covered, strict=True) if char.isalpha() and not hit)
    return hits, left


class ContextWordsValidator:
    """A password made of a context word and little else (above)."""

    def validate(self, password: str, user: Any = None) -> None:
        hits, left = context_words_in(password)
        if hits and left < CONTEXT_REMAINDER_MIN:
            raise ValidationError(
                "This password is built on “%(word)s”, a word that names this service or its "
                "organization, and attackers try those first. Add words of your own (at least "
                "%(more)d more letters) or choose another.",
                code="password_context_word",
                params={"word": hits[0], "more": CONTEXT_REMAINDER_MIN - left},
            )

    def get_help_text(self) -> str:
        return "Not built on the name of this service or its organization."


class BlocklistValidator:
    """The operator's list of breached or forbidden passwords (PASSWORD_BLOCKLIST_FILE): one
    password per line, UTF-8, optionally gzip-compressed; compared case-insensitively, as
    Django's common list is.

    Read once per process, at the first check (3.5 to 5.5 s per million entries on one
    shared core: benchmarks/password_blocklist.py). Kept as a sorted array of 64-bit digests
    (BLAKE2b of the case-folded password) searched by bisection: 8.2 bytes an entry
    measured (10 million passwords: 80 MB; 17 at the peak of loading), where a Python set of
    the strings costs 95 (benchmarks/password_blocklist.py, 12-character passwords). A
    lookup costs 6-9 µs against the set's 0.5 µs: nothing next to the argon2id hash that
    follows a password change. A 64-bit digest refuses an unlisted password by accident
    with odds of about entries / 2^64 (10^-12 for 10 million)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def validate(self, password: str, user: Any = None) -> None:
        digests = _digests(self.path)
        digest = _digest(password)
        index = bisect_left(digests, digest)
        if index < len(digests) and digests[index] == digest:
            raise ValidationError(KNOWN_MESSAGE, code="password_blocklisted")

    def get_help_text(self) -> str:
        return "Not a password exposed in a known data breach."


def _digest(password: str) -> int:
    normalized = password.strip().casefold().encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(normalized, digest_size=8).digest(), "big")


def _lines(path: Path) -> Iterator[str]:
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"  # RFC 1952 §2.3.1: ID1 ID2
    with gzip.open(path, "rb") if gzipped else path.open("rb") as lines:
        for line in lines:
            yield line.rstrip(b"\r\n").decode("utf-8", "replace")


CHUNK = 1 << 16  # digests sorted at a time while reading: bounds the memory of a load


@cache
def _digests(path: Path) -> array[int]:
    """Sorted, without duplicates. Read in sorted chunks merged at the end, so loading costs
    the final array plus one chunk's list, not a list of every entry."""
    chunks: list[array[int]] = []
    pending: list[int] = []
    for line in _lines(path):
        if line.strip():
            pending.append(_digest(line))
            if len(pending) == CHUNK:
                chunks.append(array("Q", sorted(pending)))
                pending = []
    chunks.append(array("Q", sorted(pending)))
    digests: array[int] = array("Q")
    for digest in heapq.merge(*chunks):
        if not digests or digests[-1] != digest:
            digests.append(digest)
    return digests


def blocklist_reload() -> None:
    """Read the blocklist file again at the next check (tests; a deployment restarts)."""
    _digests.cache_clear()
