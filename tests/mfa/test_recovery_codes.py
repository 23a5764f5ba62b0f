"""Recovery codes (NIST SP 800-63B §5.1.2 look-up secrets): ten, shown once, stored hashed,
each used once, regeneration voids the old set."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from apps.core.models import SecurityEvent
from apps.mfa.errors import FactorNotFound, MalformedInput, MfaError, VerificationFailed
from apps.mfa.models import RecoveryCode
from apps.mfa.recovery import recovery_code_use, recovery_codes_generate
from tests.accounts.factories import UserFactory
from tests.servers import wait_for


@pytest.mark.django_db
def test_ten_distinct_codes_are_shown_once_and_stored_hashed() -> None:
    user = UserFactory()
    codes = recovery_codes_generate(user=user)

    assert len(codes) == len(set(codes)) == 10
    assert all(len(code) == 19 and code.count("-") == 3 for code in codes)  # XXXX-XXXX-…
    stored = list(RecoveryCode.objects.values_list("code_hash", flat=True))
    assert len(stored) == 10
    for code in codes:
        assert code not in stored
        assert code.replace("-", "") not in stored
    [enrolled] = SecurityEvent.objects.filter(event_type="mfa.enrolled")
    assert enrolled.resource_type == "recovery_codes"
    assert enrolled.metadata == {"count": 10, "replaced": False}


@pytest.mark.django_db
def test_a_code_works_once_and_says_how_many_remain() -> None:
    user = UserFactory()
    codes = recovery_codes_generate(user=user)

    assert recovery_code_use(user=user, code=codes[0]) == 9
    # As typed by a person: lower case, no dashes, spaces.
    assert recovery_code_use(user=user, code=f" {codes[1].replace('-', ' ').lower()} ") == 8
    with pytest.raises(VerificationFailed):
        recovery_code_use(user=user, code=codes[0])

    used = list(SecurityEvent.objects.filter(event_type="mfa.recovery_code_used"))
    assert sorted(event.metadata["remaining"] for event in used) == [8, 9]
    [failed] = SecurityEvent.objects.filter(event_type="mfa.failed")
    assert (failed.error_code, failed.resource_type) == ("invalid_code", "recovery_codes")


@pytest.mark.django_db
def test_regenerating_voids_the_old_set() -> None:
    user = UserFactory()
    old = recovery_codes_generate(user=user)
    new = recovery_codes_generate(user=user)
    with pytest.raises(VerificationFailed):
        recovery_code_use(user=user, code=old[1])
    assert recovery_code_use(user=user, code=new[1]) == 9
    assert RecoveryCode.objects.count() == 10


@pytest.mark.django_db
def test_a_code_of_another_person_does_not_work() -> None:
    ada, bob = UserFactory(), UserFactory()
    recovery_codes_generate(user=ada)
    bobs = recovery_codes_generate(user=bob)
    with pytest.raises(VerificationFailed):
        recovery_code_use(user=ada, code=bobs[0])


@pytest.mark.django_db
@pytest.mark.parametrize("code", ["", "ABCD", "ABCD-EFGH-IJKL-MNO1", "x" * 10_000, "ÄBCD" * 4])
def test_malformed_code_is_a_clear_error(code: str) -> None:
    user = UserFactory()
    recovery_codes_generate(user=user)
    with pytest.raises(MalformedInput):
        recovery_code_use(user=user, code=code)


@pytest.mark.django_db
def test_person_without_codes_gets_factor_not_found() -> None:
    with pytest.raises(FactorNotFound):
        recovery_code_use(user=UserFactory(), code="ABCD-EFGH-IJKL-MNOP")


@pytest.mark.django_db
def test_codes_survive_a_secret_key_rotation(settings) -> None:
    user = UserFactory()
    codes = recovery_codes_generate(user=user)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a new secret key " * 4
    assert recovery_code_use(user=user, code=codes[0]) == 9


@pytest.mark.django_db(transaction=True)
def test_one_code_used_twice_at_once_succeeds_once() -> None:
    user = UserFactory()
    code = recovery_codes_generate(user=user)[3]
    start = threading.Barrier(2, timeout=30)

    def use(_: int) -> str:
        try:
            start.wait()
            return f"remaining {recovery_code_use(user=user, code=code)}"
        except MfaError as error:
            return error.error_code
        finally:
            connection.close()  # this thread's own connection

    def waiting() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            row = cursor.fetchone()
        return row is not None and row[0] >= 2

    # Hold every code row locked until both uses wait on it, so they meet at the UPDATE.
    with ThreadPoolExecutor(2) as pool:
        with transaction.atomic():
            list(RecoveryCode.objects.select_for_update())
            futures = [pool.submit(use, n) for n in range(2)]
            wait_for(waiting, timeout=30, message="both uses wait on the code's row lock")
        outcomes = [future.result(timeout=60) for future in futures]
    assert sorted(outcomes) == ["invalid_code", "remaining 9"]
    assert RecoveryCode.objects.filter(used_at__isnull=False).count() == 1
