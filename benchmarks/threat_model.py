"""Does a learned model add detection over the rules? (issue 16, "a learned component ...
Keep it only if the replay benchmark shows it adds detection over the rules alone".)

scikit-learn is not a dependency of the project; run this with it beside the project's
environment, nothing installed into it:

    .tools/bin/uv run --frozen --with scikit-learn python -m benchmarks.threat_model
    .tools/bin/uv run --frozen --with scikit-learn python -m benchmarks.threat_model \\
        --trace t.jsonl --rules candidate.json --train-share 0.6

What it does:

1. A labelled trace (benchmarks/threat_traces.py; generated unless `--trace`).
2. Every line through the replay's own pieces, in time order, history made only of the lines
   before it (apps.threat.history.MemoryHistory, apps.threat.engine.located/attempt_of,
   apps.threat.features.compute, apps.threat.scoring.score_of) and the rules (`--rules`, or
   the shipped defaults, as threat_detection.py takes them): per line, the signal vector
   (every numeric and boolean signal, and the score) and the rules' action.
3. Split by time: the first `--train-share` of the days trains, the rest tests.
4. Two models on the training part: IsolationForest (unsupervised: what a deployment without
   labels would train on its audit history) and HistGradientBoostingClassifier (supervised:
   attack vs normal, the best case of labelled history).
5. On the test part, each detector at the same false-positive rate on normal lines as the
   rules (its threshold fixed on the training part's normal lines, so the test rate is what
   it would be in production), and at 1 %: lines and episodes detected per kind. "rules or
   model" adds the model as one more alert rule within the 1 % budget: what it would add.
6. The cost: microseconds to score one attempt (one row, as sign-in would) and the size of
   the packages it would bring (scikit-learn, SciPy, NumPy, joblib, threadpoolctl).

The verdict line says whether the model, as one more rule within the same false-positive
budget, catches attack episodes that the rules plus a plain `score >= N` rule (no model
needed: the rules language has `score`) do not; the attack lines each catch are beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import threat_traces
from benchmarks.threat_detection import (
    DISRUPTIVE,
    cpu_model,
    load_ruleset,
    read_jsonl,
    setup_django,
    shipped_rules,
)

# Signals that are not features: names and identifiers (a model would learn the trace's
# countries and operators by heart), and the score (kept apart, as its own detector).
NOT_FEATURES = ("country", "ip_list", "asn", "score", "activity", "public_client")
DEPENDENCIES = ("scikit-learn", "scipy", "numpy", "joblib", "threadpoolctl")


@dataclass
class Line:
    at: dt.datetime
    kind: str
    episode: str | None
    success: bool
    features: list[float]
    score: int
    action: str


def signal_lines(trace: Path, labels: Path, ruleset: Any) -> tuple[list[str], list[Line]]:
    from apps.core.risk import Action
    from apps.threat import engine, features, history, replay, scoring
    from apps.threat.signals import SIGNALS

    names = [name for name in SIGNALS if name not in NOT_FEATURES]
    memory = history.MemoryHistory()
    out: list[Line] = []
    with trace.open(encoding="utf-8") as texts:
        records = [(text, json.loads(text)) for text in texts if text.strip()]
    for (text, record), label in zip(records, read_jsonl(labels), strict=True):
        context = engine.located(replay.parse(text))
        view = memory.observe(engine.attempt_of(context))
        signals = features.compute(context, view)
        score, _ = scoring.score_of(signals)
        signals["score"] = score
        action = Action.strongest([m.action for m in ruleset.decide(signals)])
        out.append(
            Line(
                at=context.at,
                kind=str(label["kind"]),
                episode=str(label["episode"]) if label.get("episode") else None,
                success=bool(record["success"]),
                features=[float(signals.get(name) or 0) for name in names],  # type: ignore[arg-type]
                score=score,
                action=action,
            )
        )
    return names, out


@dataclass
class Result:
    name: str
    fpr_pct: float
    lines_pct: float
    episodes_pct: float
    per_kind: dict[str, tuple[int, int, int, int]]  # episodes, caught, lines, caught
    caught_episodes: set[str]


def judge(name: str, lines: Sequence[Line], flagged: Sequence[bool]) -> Result:
    normal = [f for line, f in zip(lines, flagged, strict=True) if line.kind == "normal"]
    attack = [(line, f) for line, f in zip(lines, flagged, strict=True) if line.kind != "normal"]
    kinds: dict[str, list[Any]] = defaultdict(lambda: [set(), set(), 0, 0])
    for line, f in attack:
        k = kinds[line.kind]
        k[0].add(line.episode)
        k[2] += 1
        if f:
            k[1].add(line.episode)
            k[3] += 1
    episodes = {line.episode for line, _ in attack}
    caught = {line.episode for line, f in attack if f}
    return Result(
        name=name,
        fpr_pct=100 * sum(normal) / max(1, len(normal)),
        lines_pct=100 * sum(f for _, f in attack) / max(1, len(attack)),
        episodes_pct=100 * len(caught) / max(1, len(episodes)),
        per_kind={kind: (len(v[0]), len(v[1]), v[2], v[3]) for kind, v in sorted(kinds.items())},
        caught_episodes={e for e in caught if e},
    )


def threshold_at(normal_scores: Any, fpr: float) -> float:
    """The lowest threshold whose share of normal scores strictly above it is at most fpr."""
    import numpy as np

    if fpr <= 0:
        return float(np.max(normal_scores))
    return float(np.quantile(normal_scores, 1 - fpr, method="higher"))


def package_mb(names: Sequence[str]) -> float:
    total = 0
    for name in names:
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for file in files:
            path = Path(str(file.locate()))
            if path.is_file():
                total += path.stat().st_size
    return total / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", type=Path)
    parser.add_argument("--labels", type=Path)
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rules", type=Path, help="a rules file (default: shipped rules)")
    parser.add_argument("--train-share", type=float, default=0.6)
    parser.add_argument(
        "--extra-budget",
        type=float,
        default=0.5,
        help="%% of normal lines the model may flag beyond the rules (rules or model)",
    )
    args = parser.parse_args(argv)
    if not 0.1 <= args.train_share <= 0.9:
        parser.error("--train-share: between 0.1 and 0.9")
    try:
        import numpy as np
        from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
    except ImportError:
        parser.error(
            "scikit-learn is not installed here (on purpose): run with "
            "`.tools/bin/uv run --frozen --with scikit-learn python -m benchmarks.threat_model`"
        )

    loadavg = "/".join(f"{value:.2f}" for value in os.getloadavg())
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="threat-model-") as tmp:
        if args.trace is None:
            trace_path = Path(tmp) / "trace.jsonl"
            print(f"# generating {args.people} people over {args.days} days", file=sys.stderr)
            trace = threat_traces.generate(people=args.people, days=args.days, seed=args.seed)
            labels_path = threat_traces.labels_path(trace_path)
            threat_traces.write(trace, trace_path, labels_path)
        else:
            trace_path = args.trace
            labels_path = args.labels or threat_traces.labels_path(trace_path)
        setup_django(Path(tmp) / "data")
        ruleset = load_ruleset(args.rules or shipped_rules(Path(tmp)))
        print("# computing signals", file=sys.stderr)
        names, lines = signal_lines(trace_path, labels_path, ruleset)

    first, last = lines[0].at, lines[-1].at
    split = first + (last - first) * args.train_share
    train = [line for line in lines if line.at < split]
    test = [line for line in lines if line.at >= split]
    x_train = np.array([line.features for line in train])
    y_train = np.array([line.kind != "normal" for line in train])
    x_test = np.array([line.features for line in test])
    normal_train = ~y_train

    print("# training", file=sys.stderr)
    fit = time.perf_counter()
    forest = IsolationForest(n_estimators=200, random_state=args.seed).fit(x_train)
    forest_fit_s = time.perf_counter() - fit
    fit = time.perf_counter()
    boosted = HistGradientBoostingClassifier(random_state=args.seed).fit(x_train, y_train)
    boosted_fit_s = time.perf_counter() - fit

    detectors: dict[str, tuple[Any, Any]] = {
        # name: (scores on train, scores on test); higher = more suspicious
        "score": (
            np.array([line.score for line in train], dtype=float),
            np.array([line.score for line in test], dtype=float),
        ),
        "isolation_forest": (-forest.score_samples(x_train), -forest.score_samples(x_test)),
        "hist_gradient_boosting": (
            boosted.predict_proba(x_train)[:, 1],
            boosted.predict_proba(x_test)[:, 1],
        ),
    }
    rules_train = [line.action != "allow" for line in train]
    rules_test = [line.action != "allow" for line in test]
    rules = judge("rules", test, rules_test)
    rules_train_fpr = sum(
        f for f, line in zip(rules_train, train, strict=True) if line.kind == "normal"
    ) / max(1, int(normal_train.sum()))

    results: list[tuple[str, float, Result]] = [("rules_fpr", 0.0, rules)]
    for fpr_name, fpr in (("rules_fpr", rules_train_fpr), ("1pct", 0.01)):
        for name, (on_train, on_test) in detectors.items():
            t = threshold_at(on_train[normal_train], fpr)
            results.append((fpr_name, t, judge(name, test, list(on_test > t))))
    # The model as one more alert rule beside the rules: it may flag --extra-budget % of the
    # normal lines the rules let through (threshold fixed on the training part).
    union: dict[str, Result] = {}
    for name in ("score", "isolation_forest", "hist_gradient_boosting"):
        on_train, on_test = detectors[name]
        not_flagged = np.array([not f for f in rules_train]) & normal_train
        share = not_flagged.sum() / max(1, normal_train.sum())
        spare = args.extra_budget / 100 / max(share, 1e-9)
        t = threshold_at(on_train[not_flagged], min(1.0, spare))
        flagged = [r or bool(s > t) for r, s in zip(rules_test, on_test, strict=True)]
        union[name] = judge(f"rules_or_{name}", test, flagged)
        results.append(("rules_plus_budget", t, union[name]))

    # Cost of scoring one attempt, as sign-in would: one row at a time; with one OpenMP
    # thread (what a web worker sharing its machine should run: more threads spin against
    # the other processes) and with the library's default.
    from threadpoolctl import threadpool_limits

    row = x_test[:1]
    costs: dict[str, float] = {}
    costs_default: dict[str, float] = {}
    for name, score_one in (
        ("isolation_forest", lambda: forest.score_samples(row)),
        ("hist_gradient_boosting", lambda: boosted.predict_proba(row)),
    ):
        for limit, into in ((1, costs), (None, costs_default)):
            with threadpool_limits(limits=limit):
                for _ in range(20):
                    score_one()
                runs = 300
                t0 = time.perf_counter()
                for _ in range(runs):
                    score_one()
                into[name] = (time.perf_counter() - t0) / runs * 1e6

    import django
    import sklearn

    print(
        f"machine nproc={os.cpu_count()} cpu_model={json.dumps(cpu_model())} "
        f"python={platform.python_version()} django={django.get_version()} "
        f"sklearn={sklearn.__version__} loadavg_before={loadavg}"
    )
    print(
        f"config trace={json.dumps(str(args.trace or 'generated'))} people={args.people} "
        f"days={args.days} seed={args.seed} "
        f"rules={json.dumps(str(args.rules) if args.rules else 'default')} "
        f"train_share={args.train_share} features={len(names)} "
        f"elapsed_s={time.monotonic() - started:.0f}"
    )
    for part, chunk in (("train", train), ("test", test)):
        attacks = [line for line in chunk if line.kind != "normal"]
        print(
            f"data part={part} lines={len(chunk)} normal={len(chunk) - len(attacks)} "
            f"attack={len(attacks)} episodes={len({line.episode for line in attacks})}"
        )
    for at, threshold, result in results:
        print(
            f"detector={result.name} at={at} threshold={threshold:.4g} "
            f"normal_flagged_pct={result.fpr_pct:.2f} attack_lines_pct={result.lines_pct:.1f} "
            f"episodes_pct={result.episodes_pct:.1f}"
        )
        for kind, (episodes, caught, count, hit) in result.per_kind.items():
            print(
                f"  kind={kind} detector={result.name} at={at} episodes={episodes} "
                f"episodes_pct={100 * caught / max(1, episodes):.1f} lines={count} "
                f"lines_pct={100 * hit / max(1, count):.1f}"
            )
    stopped = sum(
        line.action in DISRUPTIVE for line in test if line.kind != "normal" and line.success
    )
    successes = sum(1 for line in test if line.kind != "normal" and line.success)
    print(f"rules successful_attacks={successes} stopped={stopped}")
    for name in ("isolation_forest", "hist_gradient_boosting"):
        fit_s = forest_fit_s if name == "isolation_forest" else boosted_fit_s
        print(
            f"cost model={name} fit_s={fit_s:.1f} us_per_attempt={costs[name]:.0f} "
            f"us_per_attempt_default_threads={costs_default[name]:.0f}"
        )
    size = package_mb(DEPENDENCIES)
    print(f"dependency packages={','.join(DEPENDENCIES)} installed_mb={size:.0f}")
    # The score needs no model: `score >= N` is a rule. A model adds detection when, as one
    # more rule within the same budget, it catches episodes the rules and a score rule miss.
    at_rules = {r.name: r for at, _, r in results if at == "rules_fpr"}
    with_score = union["score"]
    for name in ("isolation_forest", "hist_gradient_boosting"):
        model = at_rules[name]
        extra = union[name].caught_episodes - with_score.caught_episodes
        # The measure is episodes: lines within an episode already flagged change
        # nothing an operator or a response does (the alert is raised, the success stopped).
        adds = bool(extra)
        print(
            f"verdict model={name} rules_episodes_pct={rules.episodes_pct:.1f} "
            f"rules_lines_pct={rules.lines_pct:.1f} rules_normal_flagged_pct={rules.fpr_pct:.2f} "
            f"rules_or_score_episodes_pct={with_score.episodes_pct:.1f} "
            f"rules_or_score_lines_pct={with_score.lines_pct:.1f} "
            f"rules_or_score_normal_flagged_pct={with_score.fpr_pct:.2f} "
            f"model_episodes_pct_at_rules_fpr={model.episodes_pct:.1f} "
            f"model_lines_pct_at_rules_fpr={model.lines_pct:.1f} "
            f"model_normal_flagged_pct={model.fpr_pct:.2f} "
            f"rules_or_model_episodes_pct={union[name].episodes_pct:.1f} "
            f"rules_or_model_lines_pct={union[name].lines_pct:.1f} "
            f"rules_or_model_normal_flagged_pct={union[name].fpr_pct:.2f} "
            f"episodes_only_model_catches={len(extra)} us_per_attempt={costs[name]:.0f} "
            f"adds_detection={'yes' if adds else 'no'}"
        )


if __name__ == "__main__":
    main()
