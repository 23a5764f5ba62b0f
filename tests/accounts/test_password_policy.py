"""The password policy (apps/accounts/passwords.py): NIST SP 800-63B §5.1.1.2."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.test import override_settings

from apps.accounts import passwords
from apps.accounts.models import User
from apps.accounts.passwords import BlocklistValidator

ADA = User(email="ada.lovelace@example.com", name="Ada Lovelace")


def refusal(password: str, user: User | None = ADA) -> list[str]:
    with pytest.raises(ValidationError) as refused:
        validate_password(password, user=user)
    return list(refused.value.messages)


def test_twelve_characters_are_enough_and_eleven_are_not() -> None:
    validate_password("twelve chars", user=ADA)  # 800-63B: length, not composition

    assert refusal("eleven char") == [
        "Use at least 12 characters (this one has 11). A few unrelated words make a long "
        "password that is easy to remember."
    ]


def test_a_128_character_password_is_accepted_and_129_refused_with_the_limit() -> None:
    """800-63B: at least 64 characters must be allowed; ours allow 128."""
    validate_password("correct horse " * 9 + "ab", user=ADA)  # 128

    assert refusal("correct horse " * 9 + "abc") == [
        "Use at most 128 characters (this one has 129)."
    ]


def test_no_composition_rule_refuses_a_long_password_of_one_kind() -> None:
    """800-63B: "Verifiers SHOULD NOT impose other composition rules": all digits, all lower
    case, no symbol, spaces — each accepted when long and not a known password."""
    for password in ("830274619502837", "lowercase only words here", "with   many   spaces"):
        validate_password(password, user=ADA)


def test_a_common_password_is_refused_with_what_to_do() -> None:
    assert refusal("password1234") == [passwords.KNOWN_MESSAGE]
    assert refusal("PASSWORD1234") == [passwords.KNOWN_MESSAGE]  # case does not help


def test_a_password_like_the_persons_name_or_address_is_refused() -> None:
    assert refusal("ada.lovelace@example") == [
        "This password is too close to your email. Choose one that is not."
    ]
    countess = User(email="ada@example.com", name="Augusta Ada King")
    assert refusal("augusta ada king!", countess) == [
        "This password is too close to your name. Choose one that is not."
    ]


def test_unicode_counts_by_code_point() -> None:
    """800-63B: each Unicode code point counts as one character."""
    validate_password("пароль-длинный", user=ADA)  # 14 code points
    assert refusal("密码密码密码密码")[0].startswith("Use at least 12 characters (this one has 8)")


def test_the_minimum_length_is_a_setting() -> None:
    validators = [
        {"NAME": "apps.accounts.passwords.MinimumLengthValidator", "OPTIONS": {"min_length": 16}}
    ]
    with override_settings(AUTH_PASSWORD_VALIDATORS=validators):
        assert refusal("fifteen chars!!")[0].startswith("Use at least 16 characters")


@pytest.fixture
def blocklist(tmp_path: Path) -> Iterator[Path]:
    passwords.blocklist_reload()
    yield tmp_path
    passwords.blocklist_reload()


@pytest.mark.parametrize("compressed", [False, True])
def test_the_operators_blocklist_refuses_its_passwords(blocklist: Path, compressed: bool) -> None:
    lines = b"breached but long\r\nAnother Leaked One\n\n   \nunicode \xc3\xa9t\xc3\xa9 leak\n"
    file = blocklist / ("list.txt.gz" if compressed else "list.txt")
    file.write_bytes(gzip.compress(lines) if compressed else lines)
    validator = BlocklistValidator(file)

    for listed in ("breached but long", "another leaked one", "UNICODE ÉTÉ LEAK"):
        with pytest.raises(ValidationError) as refused:
            validator.validate(listed)
        assert refused.value.messages == [passwords.KNOWN_MESSAGE]
    validator.validate("breached but longer")  # only the listed password itself
    validator.validate("")  # blank lines list nothing


def test_the_blocklist_is_read_once_sorted_and_without_duplicates(
    blocklist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(passwords, "CHUNK", 64)  # several sorted chunks, merged
    file = blocklist / "list.txt"
    file.write_text("\n".join(f"leaked password {n % 500}" for n in range(3000)))
    validator = BlocklistValidator(file)
    validator.validate("not on it at all")
    file.write_text("not on it at all\n")  # read once per process: the change is not seen

    validator.validate("not on it at all")
    digests = passwords._digests(file)
    assert len(digests) == 500
    assert list(digests) == sorted(digests)


def test_the_blocklist_validator_is_configured_by_path(blocklist: Path) -> None:
    file = blocklist / "list.txt"
    file.write_text("a breached passphrase\n")
    validators = [{"NAME": "apps.accounts.passwords.BlocklistValidator", "OPTIONS": {"path": file}}]
    with override_settings(AUTH_PASSWORD_VALIDATORS=validators):
        assert refusal("a breached passphrase") == [passwords.KNOWN_MESSAGE]


@pytest.mark.parametrize(
    "password",
    [
        "Tessera2026!!",  # the product's name and a year
        "T3ss3r@T3ss3r@",  # its derivative in look-alikes
        "tessera tessera",
        "my tessera 12345678",  # five letters of its own
        "login.example.org!",  # the issuer's host (settings below)
        "AcmeCorp#2026!",  # the operator's list: the phrase as one word
        "Springfield1999",
    ],
)
@override_settings(
    ISSUER="https://login.example.org",
    SITE_NAME="Acme Sign-in",
    PASSWORD_CONTEXT_WORDS=["Acme Corp", "Springfield", "IBM"],
)
def test_a_password_built_on_a_context_word_is_refused_naming_the_word(password: str) -> None:
    [message] = refusal(password)

    assert message.startswith("This password is built on “")
    assert "a word that names this service or its organization" in message
    assert "Add words of your own" in message


@pytest.mark.parametrize(
    "password",
    [
        "tessera mosaic garden",  # the word, and fourteen letters of its own
        "correct horse battery",  # no context word
        "IBM-2026-06-01-ok!",  # "IBM" has fewer than four letters: not a context word
        "acmeusement parks",  # "acme" inside words of its own: eleven more letters
    ],
)
@override_settings(
    ISSUER="https://login.example.org",
    SITE_NAME="Acme Sign-in",
    PASSWORD_CONTEXT_WORDS=["Acme Corp", "Springfield", "IBM"],
)
def test_a_context_word_with_enough_of_its_own_or_none_is_accepted(password: str) -> None:
    validate_password(password, user=ADA)


@override_settings(
    ISSUER="https://login.example.org",
    SITE_NAME="Acme Sign-in",
    PASSWORD_CONTEXT_WORDS=["Acme Corp", "Springfield", "IBM"],
)
def test_the_documented_list_of_context_words() -> None:
    # The product's name, the site's name ("Acme Sign-in": its words of four letters or more
    # and the whole phrase), the issuer's host labels and the operator's words; longest first.
    assert passwords.context_words() == [
        "springfield", "acmesignin", "acmecorp", "example", "tessera", "login", "acme", "corp",
        "sign",
    ]  # fmt: skip


def test_the_operators_context_words_are_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from idp import env

    monkeypatch.setenv("IDP_PASSWORD_CONTEXT_WORDS", " Acme Corp , Springfield,, ")
    assert env.words("IDP_PASSWORD_CONTEXT_WORDS") == ["Acme Corp", "Springfield"]

    monkeypatch.setenv("IDP_PASSWORD_CONTEXT_WORDS", "x" * 101)
    with pytest.raises(ImproperlyConfigured, match="IDP_PASSWORD_CONTEXT_WORDS"):
        env.words("IDP_PASSWORD_CONTEXT_WORDS")
