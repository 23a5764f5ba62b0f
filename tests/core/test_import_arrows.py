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
    "mfa": {"accounts", "core"},
    "tokens": {"keys", "sessions", "accounts", "ratelimit", "core"},
    "signin": {"mfa", "sessions", "ratelimit", "accounts", "core"},
    "federation": {"signin", "tokens", "sessions", "accounts", "core"},
    "audit": {"core"},
    "threat": {"sessions", "mfa", "ratelimit", "accounts", "core"},
    "ratelimit": {"core"},
    "console": {"core", "keys", "accounts", "sessions", "tokens", "federation", "audit", "threat"}
    | {"ratelimit"}  # lockouts: see and lift them (issue 12)
    | {"signin"}  # send a verification or password-reset link (issue 14)
    | {"mfa"},  # a person's second factors: see them, reset them (issue 15)
}


def _imported_apps(path: Path) -> set[str]:
    return _imported_by(path.read_text(), str(path))


def _imported_by(source: str, filename: str = "<source>") -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        names = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level == 0
            else [node.args[0].value]
            if _imports_by_name(node)
            else []
        )
        found |= {name.split(".")[1] for name in names if name.startswith("apps.")}
        found |= {"idp" for name in names if name == "idp" or name.startswith("idp.")}
    return found


def _imports_by_name(node: ast.AST) -> bool:
    """importlib.import_module("idp.celery") / __import__("idp"): an import all the same."""
    if not isinstance(node, ast.Call) or not node.args:
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    first = node.args[0]
    return name in {"import_module", "__import__"} and (
        isinstance(first, ast.Constant) and isinstance(first.value, str)
    )


@pytest.mark.parametrize(
    "source",
    [
        "def broker():\n    import idp.celery\n",  # apps/core/health.py once did this
        "def broker():\n    from idp.celery import app\n",
        "from idp import celery\n",
        "import importlib\napp = importlib.import_module('idp.celery').app\n",
    ],
)
def test_any_import_of_idp_is_seen(source: str) -> None:
    assert "idp" in _imported_by(source)


@pytest.mark.parametrize("app", sorted(p.name for p in APPS.iterdir() if (p / "apps.py").exists()))
def test_an_app_imports_only_what_design_allows(app: str) -> None:
    assert app in MAY_IMPORT, f"apps/{app} is not in docs/architecture.md's import directions"
    wrong = {
        f"{path.relative_to(APPS.parent)} imports {'' if target == 'idp' else 'apps.'}{target}"
        for path in (APPS / app).rglob("*.py")
        for target in _imported_apps(path) - MAY_IMPORT[app] - {app}
    }
    assert not wrong, sorted(wrong)
