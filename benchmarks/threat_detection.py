"""What the threat rules catch on a labelled trace, and how fast the replay runs (issue 16,
"Benchmark and targets": at least 95 % of attack episodes flagged, per kind, at no more than
1 % of normal sign-ins flagged; the replay at 5,000 lines/s or more; the p99 scoring cost).

    .venv/bin/python -m benchmarks.threat_detection                  # the default trace
    .venv/bin/python -m benchmarks.threat_detection --rules candidate.json
    .venv/bin/python -m benchmarks.threat_detection --trace t.jsonl --labels t.labels.jsonl

Without `--trace` it generates one (benchmarks/threat_traces.py, `--people`, `--days`,
`--seed`) into a temporary folder (`--keep DIR` keeps the trace, its labels and the replay's
output there). It then runs `manage.py threat_replay TRACE --output OUT [--rules FILE]` in
this process (call_command: the command's own code, Django already set up), timed, and reads
OUT beside the labels. Without `--rules` the replay decides by the shipped default rules
(apps.threat.ruleset.shipped_rules, what migration threat/0002 installs, written to a rules
file: a new deployment's rules, without migrating a database).
A second pass times each line's decision alone (apps.threat.engine.evaluate with the
replay's in-memory history, as the replay calls it; parsing the JSON line left out) for the
per-line percentiles.

A line is flagged when its action is anything but `allow`; "disruptive" is `require_mfa`,
`block` or `invalidate_sessions` (what a person notices). An attack episode is flagged when
any of its lines is; a successful attack line is stopped when its action is disruptive.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from benchmarks import threat_traces

DISRUPTIVE = ("require_mfa", "block", "invalidate_sessions")
ACTIONS = ("allow", "alert", "require_mfa", "invalidate_sessions", "block")
GOAL_EPISODES_PCT = 95.0
GOAL_NORMAL_PCT = 1.0
GOAL_LINES_PER_S = 5000.0


def read_jsonl(path: Path) -> Iterator[dict[str, object]]:
    with path.open(encoding="utf-8") as lines:
        for text in lines:
            if text.strip():
                yield json.loads(text)


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


@dataclass
class KindFigures:
    lines: int = 0
    flagged: int = 0
    disruptive: int = 0
    successes: int = 0
    successes_stopped: int = 0
    episodes: set[str] = field(default_factory=set)
    episodes_flagged: set[str] = field(default_factory=set)
    actions: Counter[str] = field(default_factory=Counter)


@dataclass
class Figures:
    kinds: dict[str, KindFigures]
    normal_signins: int
    normal_signins_flagged: int
    # per behaviour of normal lines: [lines, flagged, disruptive]
    behaviours: dict[str, list[int]] = field(default_factory=dict)
    # score reasons (signal names) of flagged normal lines
    normal_reasons: Counter[str] = field(default_factory=Counter)

    def normal(self) -> KindFigures:
        return self.kinds[threat_traces.NORMAL]


def evaluate(
    lines: Iterable[dict[str, object]],
    labels: Iterable[dict[str, object]],
    outputs: Iterable[dict[str, object]],
) -> Figures:
    """Joins trace lines, labels and replay output (all in trace order) into per-kind figures.
    Raises ValueError when the three do not line up."""
    kinds: dict[str, KindFigures] = defaultdict(KindFigures)
    normal_signins = normal_signins_flagged = 0
    behaviours: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    reasons: Counter[str] = Counter()
    n = 0
    sentinel: dict[str, object] = {}
    joined = zip_longest(lines, labels, outputs, fillvalue=sentinel)
    for n, (line, label, out) in enumerate(joined, start=1):
        if line is sentinel or label is sentinel or out is sentinel:
            raise ValueError(f"line {n}: the trace, the labels and the output differ in length")
        if label.get("line") != n:
            raise ValueError(f"line {n}: the labels say line {label.get('line')}")
        if out.get("line") not in (n, n - 1):  # the replay may count from 0 or from 1
            raise ValueError(f"line {n}: the replay's output says line {out.get('line')}")
        action = str(out.get("action"))
        if action not in ACTIONS:
            raise ValueError(f"line {n}: unknown action {action!r}")
        kind = str(label["kind"])
        figures = kinds[kind]
        figures.lines += 1
        figures.actions[action] += 1
        flagged, disruptive = action != "allow", action in DISRUPTIVE
        figures.flagged += flagged
        figures.disruptive += disruptive
        if line.get("success") is True:
            figures.successes += 1
            figures.successes_stopped += disruptive
            if kind == threat_traces.NORMAL:
                normal_signins += 1
                normal_signins_flagged += flagged
        if kind == threat_traces.NORMAL:
            counts = behaviours[str(label.get("behaviour", "unknown"))]
            counts[0] += 1
            counts[1] += flagged
            counts[2] += disruptive
            if flagged:
                found = out.get("reasons")
                for reason in found if isinstance(found, list) else ():
                    if isinstance(reason, dict):
                        reasons[str(reason.get("signal"))] += 1
        episode = label.get("episode")
        if episode:
            figures.episodes.add(str(episode))
            if flagged:
                figures.episodes_flagged.add(str(episode))
    if not n:
        raise ValueError("the trace is empty")
    kinds.setdefault(threat_traces.NORMAL, KindFigures())
    return Figures(dict(kinds), normal_signins, normal_signins_flagged, dict(behaviours), reasons)


def report(figures: Figures) -> list[str]:
    """The stable lines: one per kind, the normal line, one target line per attack kind."""
    out: list[str] = []
    normal = figures.normal()
    normal_flagged = _pct(normal.flagged, normal.lines)
    out.append(
        f"normal lines={normal.lines} flagged_pct={normal_flagged:.2f} "
        f"disruptive_pct={_pct(normal.disruptive, normal.lines):.2f} "
        f"signins={figures.normal_signins} "
        f"signins_flagged_pct={_pct(figures.normal_signins_flagged, figures.normal_signins):.2f} "
        + " ".join(f"{a}={normal.actions[a]}" for a in ACTIONS)
    )
    for behaviour, (count, flagged, disruptive) in sorted(figures.behaviours.items()):
        out.append(
            f"normal behaviour={behaviour} lines={count} flagged_pct={_pct(flagged, count):.2f} "
            f"disruptive_pct={_pct(disruptive, count):.2f}"
        )
    top = ",".join(f"{name}:{n}" for name, n in figures.normal_reasons.most_common(8))
    out.append(f"normal flagged_reasons={top or '-'}")
    for kind in threat_traces.ATTACK_KINDS:
        k = figures.kinds.get(kind, KindFigures())
        stopped = f"{_pct(k.successes_stopped, k.successes):.1f}" if k.successes else "n/a"
        out.append(
            f"kind={kind} episodes={len(k.episodes)} "
            f"episodes_flagged_pct={_pct(len(k.episodes_flagged), len(k.episodes)):.1f} "
            f"lines={k.lines} lines_flagged_pct={_pct(k.flagged, k.lines):.1f} "
            f"lines_disruptive_pct={_pct(k.disruptive, k.lines):.1f} "
            f"successes={k.successes} successes_stopped_pct={stopped} "
            + " ".join(f"{a}={k.actions[a]}" for a in ACTIONS)
        )
    for kind in threat_traces.ATTACK_KINDS:
        k = figures.kinds.get(kind, KindFigures())
        episodes_pct = _pct(len(k.episodes_flagged), len(k.episodes))
        met = episodes_pct >= GOAL_EPISODES_PCT and normal_flagged <= GOAL_NORMAL_PCT
        out.append(
            f"target kind={kind} goal=episodes_flagged>={GOAL_EPISODES_PCT:.0f}%"
            f"@normal_flagged<={GOAL_NORMAL_PCT:.0f}% episodes_flagged_pct={episodes_pct:.1f} "
            f"normal_flagged_pct={normal_flagged:.2f} verdict={'met' if met else 'not_met'}"
        )
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_model() -> str:
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def setup_django(data_dir: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "idp.settings")
    os.environ.setdefault("IDP_DATA_DIR", str(data_dir))
    os.environ.setdefault("IDP_LOG_LEVEL", "warning")
    import django

    django.setup()


def run_replay(trace: Path, output: Path, rules: Path) -> tuple[float, float]:
    """Runs the command in this process; (wall seconds, CPU seconds of this thread)."""
    from django.core.management import call_command

    argv = [str(trace), "--output", str(output), "--rules", str(rules)]  # as a command line
    wall, cpu = time.perf_counter(), time.thread_time()
    # The command's own "N lines replayed" goes to stderr: stdout is the figures.
    call_command("threat_replay", *argv, stdout=sys.stderr, stderr=sys.stderr)
    return time.perf_counter() - wall, time.thread_time() - cpu


def load_ruleset(rules: Path) -> Any:
    from apps.threat.ruleset import Ruleset

    return Ruleset.from_json(rules)


def shipped_rules(folder: Path) -> Path:
    """The rules Tessera ships (apps.threat.ruleset.shipped_rules: what migration
    threat/0002 installs) as a rules file: a new deployment's rules, without a database."""
    from dataclasses import asdict

    from apps.threat.ruleset import shipped_rules as shipped

    path = folder / "shipped-rules.json"
    path.write_text(json.dumps([asdict(rule) for rule in shipped()], indent=1), encoding="utf-8")
    return path


@dataclass
class Timing:
    wall_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    # (rule name, line kind) -> lines it matched
    matches: Counter[tuple[str, str]] = field(default_factory=Counter)


def time_lines(trace: Path, labels: Path, rules: Path) -> Timing:
    """Each line's decision alone (apps.threat.engine.evaluate over the replay's in-memory
    history, the parsing of the line left out): what a sign-in pays, in wall and CPU time;
    and which rules matched which kind of line (the replay's output names no rule)."""
    from apps.threat import engine, replay
    from apps.threat.history import MemoryHistory

    timing = Timing()
    ruleset = load_ruleset(rules)
    history = MemoryHistory()
    with trace.open(encoding="utf-8") as lines:
        for text, label in zip(lines, read_jsonl(labels), strict=True):
            context = replay.parse(text)
            wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
            decision = engine.evaluate(context, history=history, ruleset=ruleset)
            timing.cpu_us.append((time.thread_time_ns() - cpu) / 1000)
            timing.wall_us.append((time.perf_counter_ns() - wall) / 1000)
            for name in decision.rules:
                timing.matches[(name, str(label["kind"]))] += 1
    return timing


def rule_lines(timing: Timing) -> list[str]:
    kinds = (threat_traces.NORMAL, *threat_traces.ATTACK_KINDS)
    out = []
    for name in sorted({name for name, _ in timing.matches}):
        counts = " ".join(f"{kind}={timing.matches[(name, kind)]}" for kind in kinds)
        out.append(f"rule name={name} {counts}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", type=Path, help="a trace (default: generate one)")
    parser.add_argument("--labels", type=Path, help="its labels (default: TRACE.labels.jsonl)")
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rules", type=Path, help="a rules file to try (default: shipped)")
    parser.add_argument("--keep", type=Path, help="keep trace, labels and output in DIR")
    parser.add_argument("--no-timing", action="store_true", help="skip the per-line pass")
    args = parser.parse_args(argv)
    if args.rules is not None and not args.rules.is_file():
        parser.error(f"--rules {args.rules}: no such file")
    if args.trace is not None and not args.trace.is_file():
        parser.error(f"--trace {args.trace}: no such file")

    loadavg = "/".join(f"{value:.2f}" for value in os.getloadavg())
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="threat-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.trace is None:
            trace_path = folder / "trace.jsonl"
            print(f"# generating {args.people} people over {args.days} days", file=sys.stderr)
            try:
                trace = threat_traces.generate(people=args.people, days=args.days, seed=args.seed)
            except ValueError as error:
                parser.error(str(error))
            labels_path = threat_traces.labels_path(trace_path)
            threat_traces.write(trace, trace_path, labels_path)
        else:
            trace_path = args.trace
            labels_path = args.labels or threat_traces.labels_path(trace_path)
            if not labels_path.is_file():
                parser.error(f"--labels {labels_path}: no such file")
        output = folder / "replay.jsonl"
        setup_django(Path(tmp) / "data")
        rules = args.rules or shipped_rules(folder)
        print("# replaying", file=sys.stderr)
        from django.core.management import CommandError

        try:
            wall_s, cpu_s = run_replay(trace_path, output, rules)
        except CommandError as error:  # a rules file or a trace line the replay refuses
            parser.exit(2, f"threat_replay: {error}\n")
        try:
            figures = evaluate(read_jsonl(trace_path), read_jsonl(labels_path), read_jsonl(output))
        except ValueError as error:  # labels of another trace, or output that is not JSON
            parser.exit(2, f"{labels_path}: {error}\n")
        lines = sum(k.lines for k in figures.kinds.values())
        timing = Timing()
        if not args.no_timing:
            print("# timing each line", file=sys.stderr)
            timing = time_lines(trace_path, labels_path, rules)

    import django

    print(
        f"machine nproc={os.cpu_count()} cpu_model={json.dumps(cpu_model())} "
        f"python={platform.python_version()} django={django.get_version()} "
        f"loadavg_before={loadavg}"
    )
    print(
        f"config trace={json.dumps(str(args.trace or 'generated'))} people={args.people} "
        f"days={args.days} seed={args.seed} "
        f"rules={json.dumps(str(args.rules) if args.rules else 'default')} "
        f"elapsed_s={time.monotonic() - started:.0f}"
    )
    wall, cpu = timing.wall_us, timing.cpu_us
    timed = (
        f"p50_us={percentile(wall, 0.50):.0f} p99_us={percentile(wall, 0.99):.0f} "
        f"max_us={max(wall):.0f} cpu_p50_us={percentile(cpu, 0.50):.0f} "
        f"cpu_p99_us={percentile(cpu, 0.99):.0f} cpu_mean_us={statistics.fmean(cpu):.0f}"
        if wall
        else "p50_us=n/a p99_us=n/a max_us=n/a cpu_p50_us=n/a cpu_p99_us=n/a cpu_mean_us=n/a"
    )
    print(
        f"replay lines={lines} wall_s={wall_s:.2f} lines_per_s={lines / wall_s:.0f} "
        f"cpu_s={cpu_s:.2f} cpu_lines_per_s={lines / max(cpu_s, 1e-9):.0f} {timed}"
    )
    for text in report(figures) + rule_lines(timing):
        print(text)
    rate = lines / wall_s
    print(
        f"target replay goal=lines_per_s>={GOAL_LINES_PER_S:.0f} lines_per_s={rate:.0f} "
        f"cpu_lines_per_s={lines / max(cpu_s, 1e-9):.0f} "
        f"verdict={'met' if rate >= GOAL_LINES_PER_S else 'not_met'}"
    )


if __name__ == "__main__":
    main()
