"""Fixtures of the federation tests: the GitHub and Google stand-ins (tests/federation/
standins.py), each started on a free loopback port for one test and stopped after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.federation.standins import GitHubStandIn, GoogleStandIn


@pytest.fixture
def github_standin() -> Iterator[GitHubStandIn]:
    standin = GitHubStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def google_standin() -> Iterator[GoogleStandIn]:
    standin = GoogleStandIn().start()
    yield standin
    standin.stop()
