"""The Python API (api.py): README.md's example runs as it is written, and the API's errors are the CLI's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from modelladder.errors import InputError
from tests.tiny_data import churn_frame, reviews_frame

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The README's Python block that uses Ladder.from_frame."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    found = [b for b in blocks if "Ladder.from_frame" in b]
    assert len(found) == 1, "README.md should hold one Python example with Ladder.from_frame"
    return found[0]


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path, monkeypatch, capsys):
    churn_frame().to_csv(tmp_path / "churn.csv", index=False)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    board, result = scope["board"], scope["result"]
    assert isinstance(board, pd.DataFrame) and list(board["rung"]) == ["linear", "random_forest", "hist_gb", "mlp"]
    assert board.report_path == Path("runs/frame/report.html") and board.report_path.is_file()
    assert board.best_rung in set(board["rung"]) and "best rung" in board._repr_html_()
    assert set(board.best.predict(churn_frame().head())) <= {"yes", "no"}
    assert result["metrics"]["accuracy"] > 0.8 and (tmp_path / "runs" / "run" / "model.skops").is_file()
    out = capsys.readouterr().out
    assert "rungs: linear" in out and "test_accuracy" in out


def test_import_is_cheap_and_train_is_the_function():
    code = ("import sys, modelladder; assert 'torch' not in sys.modules and 'pandas' not in sys.modules; "
            "import modelladder.train.loop; from modelladder import train, Ladder; "
            "assert callable(train) and modelladder.train is train and Ladder.__name__ == 'Ladder'; "
            "from modelladder.train import loop; assert callable(loop.fit)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_api_raises_the_cli_errors(tmp_path):
    from modelladder import Ladder, train

    with pytest.raises(InputError, match="--label is required for a table"):
        Ladder.from_frame(churn_frame(), label=None, runs_dir=tmp_path)
    with pytest.raises(InputError, match="df must be a pandas DataFrame, got dict"):
        Ladder.from_frame({"a": [1]}, label="a")
    with pytest.raises(InputError, match="name must be 1-128 letters"):
        Ladder.from_frame(churn_frame(), label="churned", name="../x")
    with pytest.raises(InputError, match="a ladder config lists its rungs"):
        Ladder.from_config({"data": {"dataset": "digits"}})
    with pytest.raises(InputError, match=r"rungs\[0\].model.name must be one of .* got .mpl. \(did you mean .mlp.\?\)"):
        Ladder.from_config({"rungs": ["mpl"]})
    with pytest.raises(InputError, match="it is a ladder; run it with Ladder.from_config"):
        train({"rungs": ["logreg"]})
    with pytest.raises(InputError, match="model is required"):
        train({"data": {"dataset": "digits"}}, runs_dir=tmp_path)
    assert not (tmp_path / "frame").exists()


def test_a_ladder_plans_before_it_runs(tmp_path):
    from modelladder import Ladder

    ladder = Ladder.from_frame(churn_frame(), label="churned", name="churn", runs_dir=tmp_path,
                               overrides=["train.epochs=3"])
    assert ladder.name == "churn" and ladder.config.train["epochs"] == 3
    assert "ladder 'churn' on parquet" in ladder.plan and "up to 3 epochs" in repr(ladder.plan)
    assert ladder.config.data["path"].startswith(str(tmp_path / ".data" / "churn-"))
    assert Ladder.from_config({"name": "d", "rungs": ["logreg"]}).plan.startswith("ladder 'd' on digits")


@pytest.mark.slow
def test_the_best_rung_of_a_text_ladder_reads_the_same_frame(tmp_path, monkeypatch):
    from modelladder import train
    from modelladder.api import RungPredictor

    monkeypatch.chdir(tmp_path)
    reviews_frame().to_csv("reviews.csv", index=False)
    result = train({"data": {"dataset": "text", "path": "reviews.csv", "label": "sentiment", "text": "review"},
                    "model": {"name": "tfidf_logreg"}}, name="reviews")
    predictor = RungPredictor.load(result["run_dir"])
    frame = reviews_frame().head(6)
    assert list(predictor.predict(frame)) == list(frame["sentiment"])
    assert list(predictor.predict(list(frame["review"]))) == list(frame["sentiment"])
    with pytest.raises(InputError, match="the input table has no text column 'review'"):
        predictor.predict(frame.rename(columns={"review": "body"}))
