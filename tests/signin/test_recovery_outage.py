"""Redis down while a person resets their password: the reset is still answered with a page,
never a 500 (DESIGN: nothing is lost when a dependency fails)."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.signin.links import link_make
from apps.signin.recovery import RESET
from tests.servers import Redis

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_redis(tmp_path, settings) -> Any:
    """A Redis of this test's own as the application's (the suite's stays up for others)."""
    server = Redis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url(0)  # apps.core.redis.get_redis() follows it
    yield server
    server.stop(signal.SIGKILL)


def test_a_reset_with_redis_down_answers_a_page(own_redis: Any) -> None:
    ada = user_create(email="ada@example.com", password="a long correct passphrase")
    token = link_make(RESET, ada)
    own_redis.stop(signal.SIGKILL)
    new = "quite another passphrase"

    response = HttpClient().post(
        f"/password/reset/{token}", {"token": token, "password": new, "password_again": new}
    )

    assert response.status_code == 200
    assert "Your new password is set." in response.content.decode()
    assert User.objects.get(pk=ada.pk).check_password(new)
