"""manage.py threat_replay INPUT.jsonl --output OUT.jsonl [--rules rules.json]: the sign-in's
scoring and rules over a recorded trace (apps/threat/replay.py; docs/threat.md "Replay")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.threat import engine, port, replay
from apps.threat.ruleset import Ruleset, RulesetError


class Command(BaseCommand):
    help = (
        "Replays a JSON-lines trace of sign-in attempts through threat scoring and the rules, "
        "in time order, each attempt seeing only the lines before it; writes nothing but OUT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("input", type=Path, help="the trace, one attempt a line (JSON)")
        parser.add_argument("--output", type=Path, required=True, help="where results go")
        parser.add_argument(
            "--rules",
            type=Path,
            help="rules as JSON (apps.threat.ruleset.Ruleset.from_json); default: the "
            "enabled rules of the database",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Path() again: call_command(..., output="x") passes the keyword as given, untyped.
        source, target = Path(options["input"]), Path(options["output"])
        ruleset = self._ruleset(options["rules"])
        try:
            with source.open(encoding="utf-8") as lines:
                results = list(
                    replay.replay(
                        lines, ruleset=ruleset, progress=replay.Progress(self.stderr.write)
                    )
                )
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"cannot read {source}: {error}") from None
        try:
            with target.open("w", encoding="utf-8") as out:
                for result in results:
                    out.write(result.text + "\n")
        except OSError as error:
            raise CommandError(f"cannot write {target}: {error}") from None
        bad = [r.line for r in results if '"error"' in r.text[:40]]
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
            raise CommandError(
                f"{len(bad)} of {len(results)} lines could not be read (lines {shown}); "
                f"{target} has an error record for each"
            )
        self.stdout.write(f"{len(results)} lines replayed to {target}")

    def _ruleset(self, path: Path | None) -> engine.Rules:
        if path is None:
            return port._current_rules()
        try:
            return Ruleset.from_json(path)
        except RulesetError as error:  # names the file, the entry and what is wrong
            raise CommandError(str(error)) from None
