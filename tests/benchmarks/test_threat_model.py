"""benchmarks/threat_model.py needs scikit-learn, which is not a dependency of the project
(issue 16: only if the model adds detection; it does not, see benchmarks/README.md): without
it the script says how to run it instead of failing on an import."""

from __future__ import annotations

import importlib.util

import pytest

from benchmarks import threat_model


@pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is not None,
    reason="scikit-learn is installed in this environment: the message is not shown",
)
def test_without_scikit_learn_the_script_says_how_to_run_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
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
    np = pytest.importorskip("numpy")
    normal = np.arange(1000, dtype=float)
    threshold = threat_model.threshold_at(normal, 0.01)
    assert (normal > threshold).mean() <= 0.01
    assert threat_model.threshold_at(normal, 0.0) == 999.0
