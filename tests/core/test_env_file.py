"""NAME_FILE (idp/env.py): every setting may come from a file instead of the environment, the
way Compose and Kubernetes secrets and systemd's LoadCredential= hand values over."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from idp import env

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-value-that-must-never-appear-in-an-error"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IDP_TEST_VALUE", "IDP_TEST_VALUE_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_the_file_gives_the_value_without_its_trailing_newlines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value_file = tmp_path / "value"
    value_file.write_text("s3cret with spaces\r\n\n")
    monkeypatch.setenv("IDP_TEST_VALUE_FILE", str(value_file))
    assert env.string("IDP_TEST_VALUE", "default") == "s3cret with spaces"
    assert env.optional_string("IDP_TEST_VALUE") == "s3cret with spaces"


def test_a_file_without_a_newline_is_read_as_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "port").write_text("8443")
    monkeypatch.setenv("IDP_TEST_VALUE_FILE", str(tmp_path / "port"))
    assert env.integer("IDP_TEST_VALUE", 1, minimum=1, maximum=65535) == 8443


def test_every_typed_read_takes_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readings = {
        "on\n": lambda: env.boolean("IDP_TEST_VALUE", False),
        "postgres://u:p@db/x\n": lambda: env.url("IDP_TEST_VALUE", None, schemes=("postgres",)),
        "10.0.0.0/8\n": lambda: [str(n) for n in env.networks("IDP_TEST_VALUE")],
        "production\n": lambda: env.choice("IDP_TEST_VALUE", "x", ("development", "production")),
        "30/1m\n": lambda: env.rate("IDP_TEST_VALUE", "off")["limit"],  # type: ignore[index]
    }
    expected = [True, "postgres://u:p@db/x", ["10.0.0.0/8"], "production", 30]
    for (content, read), wanted in zip(readings.items(), expected, strict=True):
        (tmp_path / "value").write_text(content)
        monkeypatch.setenv("IDP_TEST_VALUE_FILE", str(tmp_path / "value"))
        assert read() == wanted


def test_unset_file_and_empty_variable_leave_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDP_TEST_VALUE_FILE", "  ")  # blank: unset, as a blank variable is
    monkeypatch.setenv("IDP_TEST_VALUE", "")
    assert env.string("IDP_TEST_VALUE", "default") == "default"


def test_both_set_is_refused_naming_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "value").write_text(SECRET)
    monkeypatch.setenv("IDP_TEST_VALUE", "other")
    monkeypatch.setenv("IDP_TEST_VALUE_FILE", str(tmp_path / "value"))
    with pytest.raises(env.FileSettingError) as raised:
        env.optional_string("IDP_TEST_VALUE")
    assert (
        str(raised.value) == "IDP_TEST_VALUE and IDP_TEST_VALUE_FILE are both set: set one of them."
    )


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda directory: directory / "absent", "cannot be read (No such file or directory)"),
        (lambda directory: directory, "cannot be read (Is a directory)"),
        (lambda directory: _written(directory, ""), "the file is empty"),
        (lambda directory: _written(directory, "\n\n"), "the file is empty"),
        (lambda directory: _written(directory, "  \r\n"), "the file is empty"),
        (lambda directory: _written(directory, b"\xff\xfe" + SECRET.encode()), "not UTF-8 text"),
        (lambda directory: _written(directory, "x" * (env.MAX_FILE_BYTES + 1)), "larger than"),
    ],
    ids=["missing", "directory", "empty", "newlines", "blank", "binary", "huge"],
)
def test_a_file_that_gives_no_value_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: object, reason: str
) -> None:
    location = make(tmp_path)  # type: ignore[operator]
    monkeypatch.setenv("IDP_TEST_VALUE_FILE", str(location))
    with pytest.raises(ImproperlyConfigured) as raised:
        env.string("IDP_TEST_VALUE", "default")
    message = str(raised.value)
    assert message.startswith(f"IDP_TEST_VALUE_FILE={str(location)!r}: ")
    assert reason in message
    assert SECRET not in message


def test_a_malformed_value_from_a_file_names_the_file_not_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = _written(tmp_path, f"mysql://tessera:{SECRET}@db/idp\n")
    monkeypatch.setenv("IDP_TEST_VALUE_FILE", str(location))
    with pytest.raises(ImproperlyConfigured) as raised:
        env.url("IDP_TEST_VALUE", None, schemes=("postgres",))
    assert str(raised.value) == (
        f"IDP_TEST_VALUE (read from IDP_TEST_VALUE_FILE={str(location)!r}) is not valid: "
        "expected a URL starting with postgres://."
    )


def _written(directory: Path, content: str | bytes) -> Path:
    path = directory / "value"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


# --- Through the real settings, as `manage.py` starts them ---------------------------------


def _check(tmp_path: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "PORT"))}
    for name in ("DATABASE_URL", "REDIS_URL", "CLICKHOUSE_URL", "CELERY_BROKER_URL"):
        clean.pop(name, None)
    clean.update({"IDP_DATA_DIR": str(tmp_path / "data"), **environ})
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_production_starts_with_every_secret_from_a_file(tmp_path: Path) -> None:
    files = {
        "IDP_SECRET_KEY": "k" * 64 + "\n",
        "IDP_KEY_ENCRYPTION_KEY": "A" * 43 + "\n",
        "IDP_SMTP_URL": "smtp://idp%40example.com:secret@mail.example.com:587\n",
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    result = _check(
        tmp_path,
        IDP_ENV="production",
        IDP_ISSUER="https://idp.example.com",
        **{f"{name}_FILE": str(tmp_path / name) for name in files},
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_startup_names_the_missing_file_without_a_traceback(tmp_path: Path) -> None:
    result = _check(
        tmp_path,
        IDP_ENV="production",
        IDP_ISSUER="https://idp.example.com",
        IDP_SECRET_KEY="k" * 64,
        IDP_KEY_ENCRYPTION_KEY="A" * 43,
        IDP_SMTP_URL_FILE="/run/secrets/absent",
    )
    assert result.returncode != 0
    assert (
        "IDP_SMTP_URL_FILE='/run/secrets/absent': the file cannot be read "
        "(No such file or directory)" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_static_root_follows_its_setting_and_defaults_to_the_data_dir(tmp_path: Path) -> None:
    show = "from django.conf import settings; print(settings.STATIC_ROOT)"
    env_base = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "PORT"))}

    def static_root(**environ: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", show],
            cwd=ROOT,
            env={**env_base, "DJANGO_SETTINGS_MODULE": "idp.settings",
                 "IDP_DATA_DIR": str(tmp_path), **environ},
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return result.stdout.strip()

    assert static_root() == str(tmp_path.resolve() / "static")
    assert static_root(IDP_STATIC_ROOT=str(tmp_path / "elsewhere")) == str(
        tmp_path.resolve() / "elsewhere"
    )
