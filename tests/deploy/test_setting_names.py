"""Every Tessera variable deploy/ sets is one idp/settings.py reads: a misspelt name (say
IDP_TRUSTED_PROXY) would be ignored without a word and leave the default in force."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import yaml

from tests.deploy.test_containerfile import CONTAINERFILE, env_of, parse

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TESSERA_NAME = re.compile(r"IDP_\w+|DATABASE_URL|REDIS_URL|CELERY_BROKER_URL|CLICKHOUSE_URL|PORT")


def names_set_by_deploy() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def add(where: str, names: Iterable[object]) -> None:
        for name in map(str, names):
            if TESSERA_NAME.fullmatch(name):
                found.setdefault(name, set()).add(where)

    add("Containerfile", env_of(parse(CONTAINERFILE.read_text()).stages[-1]))
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        add(f"compose {name}", service.get("environment", {}))
        secrets = [secret for secret in service.get("secrets", []) if isinstance(secret, dict)]
        add(f"compose {name}", [secret["target"] for secret in secrets])
    for path in sorted((DEPLOY / "kubernetes").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == "ConfigMap":
                add(str(path.relative_to(DEPLOY)), document["data"])
            if document and document["kind"] == "Secret":
                add(str(path.relative_to(DEPLOY)), document["stringData"])
    return found


def test_every_variable_deploy_sets_is_read_by_the_settings() -> None:
    settings = (ROOT / "idp" / "settings.py").read_text()
    found = names_set_by_deploy()
    assert {"IDP_SECRET_KEY", "IDP_KEY_ENCRYPTION_KEY", "IDP_TRUSTED_PROXIES"} <= set(found)
    unread = {name: sorted(where) for name, where in found.items() if f'"{name}"' not in settings}
    assert unread == {}
