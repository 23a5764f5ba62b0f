"""benchmarks/threat_model.py needs scikit-learn, which is not a dependency of the project
(issue 16: only if the model adds detection; it does not, see benchmarks/README.md): without
it the script says how to run it instead of failing on an import."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from benchmarks import threat_model


def test_without_scikit_learn_the_script_says_how_to_run_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Absent here whether or not this environment has it: a None entry makes its import fail.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(SystemExit) as exit_:
        threat_model.main(["--people", "20", "--days", "10"])
    assert exit_.value.code == 2
    assert "uv run --frozen --with scikit-learn" in capsys.readouterr().err


def test_a_train_share_outside_its_range_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        threat_model.main(["--train-share", "0.95"])
    assert exit_.value.code == 2
    assert "--train-share: between 0.1 and 0.9" in capsys.readouterr().err


def test_the_threshold_keeps_normal_scores_above_it_within_the_rate() -> None:
    normal = np.arange(1000, dtype=float)
    threshold = threat_model.threshold_at(normal, 0.01)
    assert (normal > threshold).mean() <= 0.01
    assert threat_model.threshold_at(normal, 0.0) == 999.0
