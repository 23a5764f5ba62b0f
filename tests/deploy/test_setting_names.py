"""Every Tessera variable deploy/ sets is one idp/settings.py reads: a misspelt name (say
IDP_TRUSTED_PROXY) would be ignored without a word and leave the default in force. NAME_FILE
counts as NAME (idp/env.py reads every setting from a file too), unless NAME_FILE is itself a
setting (IDP_METRICS_TOKEN_FILE)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import yaml

from tests.deploy.test_containerfile import CONTAINERFILE, env_of, parse

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TESSERA_NAME = re.compile(
    r"IDP_\w+|(DATABASE_URL|DATABASE_REPLICA_URL|REDIS_URL|CELERY_BROKER_URL|CLICKHOUSE_URL|PORT)"
    r"(_FILE)?"
)
WORKLOADS = {"Deployment", "Job"}


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
    for path in sorted((DEPLOY / "kubernetes").rglob("*.yaml")):
        where = str(path.relative_to(DEPLOY))
        for document in yaml.safe_load_all(path.read_text()):
            if not document or "kind" not in document:
                continue
            if document["kind"] == "ConfigMap":
                add(where, document["data"])
            if document["kind"] == "Secret":
                add(where, document["stringData"])
            if document["kind"] in WORKLOADS:
                spec = document["spec"].get("template", {}).get("spec", {})  # a patch may not
                for container in spec.get("containers", []):
                    add(where, [variable["name"] for variable in container.get("env", [])])
    return found


def unread(found: dict[str, set[str]], settings: str) -> dict[str, list[str]]:
    def read(name: str) -> bool:
        if f'"{name}"' in settings:
            return True
        return name.endswith("_FILE") and f'"{name.removesuffix("_FILE")}"' in settings

    return {name: sorted(where) for name, where in found.items() if not read(name)}


def test_every_variable_deploy_sets_is_read_by_the_settings() -> None:
    settings = (ROOT / "idp" / "settings.py").read_text()
    found = names_set_by_deploy()
    assert {
        "IDP_SECRET_KEY_FILE", "IDP_KEY_ENCRYPTION_KEY_FILE", "DATABASE_URL_FILE",
        "IDP_TRUSTED_PROXIES", "IDP_STATIC_ROOT", "IDP_MTLS_PORT", "IDP_METRICS_TOKEN_FILE",
    } <= set(found)  # fmt: skip
    assert unread(found, settings) == {}


def test_a_misspelt_name_is_caught_with_or_without_file() -> None:
    settings = 'env.optional_string("IDP_SECRET_KEY")\nenv.existing_file("IDP_METRICS_TOKEN_FILE")'
    found = {
        name: {"here"}
        for name in ("IDP_SECRET_KEY", "IDP_SECRET_KEY_FILE", "IDP_METRICS_TOKEN_FILE",
                     "IDP_SECRETKEY_FILE", "IDP_SECRET_KEY_FILE_FILE")
    }  # fmt: skip
    assert unread(found, settings) == {
        "IDP_SECRETKEY_FILE": ["here"],
        "IDP_SECRET_KEY_FILE_FILE": ["here"],
    }
