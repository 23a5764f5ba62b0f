"""The import directions of docs/architecture.md ("Which way imports go"): each app imports
only the apps below it, so the kernel stays free of the features built on it, and no app
imports idp, the composition root. Read from the source, every `import apps.x` and
`from apps.x import ...` (and idp), function-level imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parents[2] / "apps"

# docs/architecture.md: an arrow is "may import"; console may import any app and none imports
# console.
MAY_IMPORT: dict[str, set[str]] = {
    "core": set(),
    "accounts": {"core"},
    "sessions": {"accounts", "core"},
    "keys": {"core"},
    "tokens": {"keys", "sessions", "accounts", "core"},
    "federation": {"tokens", "sessions", "accounts", "core"},
    "audit": {"core"},
    "threat": {"sessions", "accounts", "core"},
    "ratelimit": {"core"},
    "console": {"core", "keys", "accounts", "sessions", "tokens", "federation", "audit", "threat"},
}


def _imported_apps(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level == 0
            else []
        )
        found |= {name.split(".")[1] for name in names if name.startswith("apps.")}
        found |= {"idp" for name in names if name == "idp" or name.startswith("idp.")}
    return found


@pytest.mark.parametrize("app", sorted(p.name for p in APPS.iterdir() if (p / "apps.py").exists()))
def test_an_app_imports_only_what_design_allows(app: str) -> None:
    assert app in MAY_IMPORT, f"apps/{app} is not in docs/architecture.md's import directions"
    wrong = {
        f"{path.relative_to(APPS.parent)} imports {'' if target == 'idp' else 'apps.'}{target}"
        for path in (APPS / app).rglob("*.py")
        for target in _imported_apps(path) - MAY_IMPORT[app] - {app}
    }
    assert not wrong, sorted(wrong)
