"""BENCHMARKS.md target 6: `ladder run TRAIN.csv --label income --time-limit T` vs AutoGluon's
`TabularPredictor(label="income").fit(train, time_limit=T)` (peer `autogluon-tabular`) on UCI Adult.

Both get the same rows: Adult's official split exported to CSV (adult.data's 32,561 rows as train.csv,
adult.test's 16,281 as test.csv, '?' left as a missing value, the test labels' trailing '.' removed). Each
trains on train.csv only (holding out what it wants from it: our ladder its validation and test split, on
which it picks its best rung; AutoGluon its own validation) and predicts test.csv, which neither sees before.
Reported for each: test accuracy with its 95% Wilson interval, and the wall time to a trained model (ours:
the `ladder run` process; theirs: the AutoGluon process up to the end of fit(), imports and CSV reading
included on both sides); the ratio is theirs / ours. Run once each, alternating ours / theirs (--rounds
more), on the same machine.

AutoGluon lives in its own environment, .venv-autogluon (`make bench-automl` makes it: autogluon.tabular
with its LightGBM, CatBoost and XGBoost extras, no torch), and runs in a subprocess
(benchmarks/automl_autogluon.py). Ours is driven through `ours_command`: `ladder run CSV --label income
--time-limit T` (without --time-limit while the CLI lacks it: then T binds AutoGluon only), or, with a CLI
that has no --label either, a ladder YAML of configs/ladders/adult.yaml's logreg, hist_gb and mlp rungs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from benchmarks.common import alternate, median, record
from modelladder.evaluate.intervals import wilson

REPO = Path(__file__).resolve().parents[1]
AUTOGLUON_PYTHON = REPO / ".venv-autogluon" / "bin" / "python"
LABEL = "income"
RUNGS = ["logreg", "hist_gb", "mlp"]  # configs/ladders/adult.yaml without its differentially private MLP
ADULT_LADDER = REPO / "configs" / "ladders" / "adult.yaml"


def export_split(data_root: Path, out: Path, limit: int | None = None) -> tuple[Path, Path]:
    """Adult's official train / test split as train.csv and test.csv in `out` (the first `limit` rows of each)."""
    from modelladder.data.adult import read_adult

    train = read_adult(data_root / "adult" / "adult.data", skip=0)
    test = read_adult(data_root / "adult" / "adult.test", skip=1)
    test[LABEL] = test[LABEL].str.removesuffix(".")
    paths = out / "train.csv", out / "test.csv"
    for frame, path in zip((train, test), paths):
        frame.head(limit).to_csv(path, index=False)
    return paths


def cli_has(*flags: str) -> bool:
    """Whether `ladder run` takes every one of `flags` (the data-file form lands with issue 16)."""
    help_text = subprocess.run([sys.executable, "-m", "modelladder", "run", "--help"], check=False,
                               capture_output=True, text=True, env=_env()).stdout
    return all(flag in help_text for flag in flags)


def ours_command(train_csv: Path, time_limit: float, runs_dir: Path, cli_form: bool,
                 timed: bool = True) -> list[str]:
    """The `ladder run` command for the train CSV: the data-file form (`timed`: with --time-limit), or a ladder
    YAML written beside it."""
    ladder = [sys.executable, "-m", "modelladder", "run"]
    if cli_form:
        limit = ["--time-limit", f"{time_limit:g}"] if timed else []
        return [*ladder, str(train_csv), "--label", LABEL, *limit, "--runs-dir", str(runs_dir), "--overwrite"]
    base = yaml.safe_load(ADULT_LADDER.read_text())
    config = {"name": "automl-adult", "seed": 0, "train": base["train"],
              "data": {"dataset": "csv", "path": str(train_csv), "label": LABEL, "split": {"val": 0.1}},
              "rungs": [r for r in base["rungs"] if r["name"] in RUNGS]}
    path = train_csv.with_name("automl-adult.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return [*ladder, str(path), "--runs-dir", str(runs_dir), "--overwrite"]


def best_rung(runs_dir: Path) -> Path:
    """The run folder of the ladder's best rung by its own held-out accuracy (a split of train.csv)."""
    boards = sorted(runs_dir.glob("*/leaderboard.json"))
    if len(boards) != 1:
        raise RuntimeError(f"expected one ladder in {runs_dir}, found {[str(b) for b in boards]}")
    rows = [r for r in json.loads(boards[0].read_text()) if r.get("status", "ok") == "ok"]
    if not rows:
        raise RuntimeError(f"every rung of {boards[0].parent} failed")
    key = next(k for k in ("test_accuracy", "val_accuracy") if k in rows[0])
    return boards[0].parent / max(rows, key=lambda r: r[key])["rung"]


def accuracy(predicted, truth) -> dict:
    """Accuracy and its 95% Wilson interval."""
    hits = int((np.asarray(predicted, dtype=object) == np.asarray(truth, dtype=object)).sum())
    low, high = wilson(hits, len(truth))
    return {"accuracy": hits / len(truth), "low": low, "high": high}


def ours(train_csv: Path, test_csv: Path, time_limit: float, work: Path, cli_form: bool, timed: bool) -> dict:
    runs_dir = work / "ours-runs"
    start = time.perf_counter()
    # exit 1: some rungs failed and the leaderboard names them; the rest count
    _run(ours_command(train_csv, time_limit, runs_dir, cli_form, timed), "ladder run", allowed=(0, 1))
    seconds = time.perf_counter() - start
    best = best_rung(runs_dir)
    out = work / "ours-predictions.csv"
    _run([sys.executable, "-m", "modelladder", "predict", str(best), str(test_csv), "--out", str(out)],
         "ladder predict")
    truth = pd.read_csv(test_csv)[LABEL]
    print(f"    ours: best rung {best.name}")
    return {"seconds": seconds, **accuracy(pd.read_csv(out)["prediction"], truth)}


def theirs(train_csv: Path, test_csv: Path, time_limit: float, work: Path) -> dict:
    out = work / "autogluon"
    out.mkdir(exist_ok=True)
    _run([str(AUTOGLUON_PYTHON), str(Path(__file__).with_name("automl_autogluon.py")), str(train_csv),
          str(test_csv), LABEL, f"{time_limit:g}", str(out)], "AutoGluon")
    timings = json.loads((out / "timings.json").read_text())
    print(f"    AutoGluon: best model {timings['best_model']} of {timings['models']}")
    truth = pd.read_csv(test_csv)[LABEL]
    return {"seconds": timings["to_trained_s"], **accuracy(pd.read_csv(out / "predictions.csv")["prediction"], truth)}


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}


def _run(command: list[str], what: str, allowed: tuple[int, ...] = (0,)) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=_env())
    if result.returncode == 1 and 1 in allowed:
        print(f"    {what}: {result.stderr.strip().splitlines()[-1]}")
    elif result.returncode not in allowed:
        raise RuntimeError(f"{what} failed ({result.returncode}): {' '.join(command)}\n{result.stderr[-3000:]}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks automl")
    parser.add_argument("--time-limit", type=float, default=60.0, help="T seconds for both (default 60)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each, alternating (default 1)")
    parser.add_argument("--quick", action="store_true", help="2,000 train / 2,000 test rows, T=15: checks it runs")
    parser.add_argument("--no-record", action="store_true", help="print only: no line in results/automl.jsonl")
    args = parser.parse_args(argv)
    if not AUTOGLUON_PYTHON.is_file():
        print(f"{AUTOGLUON_PYTHON} is missing: `make bench-automl` makes it", file=sys.stderr)
        return 2
    from modelladder.data.download import data_root

    time_limit = 15.0 if args.quick else args.time_limit
    cli_form, timed = cli_has("--label"), cli_has("--label", "--time-limit")
    with tempfile.TemporaryDirectory(prefix="automl-") as tmp:
        work = Path(tmp)
        train_csv, test_csv = export_split(data_root(None), work, limit=2000 if args.quick else None)
        n_train, n_test = len(pd.read_csv(train_csv)), len(pd.read_csv(test_csv))
        how = ("ladder run CSV --label income --time-limit T" if timed else
               "ladder run CSV --label income (no --time-limit yet: T binds AutoGluon only)" if cli_form else
               f"ladder run on a YAML of adult.yaml's {', '.join(RUNGS)} rungs (no --label yet: T unused)")
        print(f"Adult: train {n_train} / test {n_test} rows, T={time_limit:g} s, {args.rounds} round(s); ours: {how}")
        results = alternate({"ours": lambda: ours(train_csv, test_csv, time_limit, work, cli_form, timed),
                             "autogluon-tabular": lambda: theirs(train_csv, test_csv, time_limit, work)},
                            args.rounds, warmup=False)
    return report(results, time_limit, args, "cli" if timed else "cli-untimed" if cli_form else "yaml")


def report(results: dict[str, list[dict]], time_limit: float, args, form: str) -> int:
    """Print both sides' accuracy with intervals and wall time, the ratio, and record the line."""
    ours_r, theirs_r = results["ours"], results["autogluon-tabular"]
    command = f"make bench-automl T={time_limit:g}  # = python -m benchmarks automl --time-limit {time_limit:g}"
    line = record("automl", "autogluon-tabular", unit=f"s to a trained model (T={time_limit:g} s)",
                  ours=median(ours_r, "seconds"), theirs=median(theirs_r, "seconds"), higher_is_better=False,
                  quality_metric="test_accuracy", ours_quality=median(ours_r, "accuracy"),
                  theirs_quality=median(theirs_r, "accuracy"), command=command, write=not (args.quick or args.no_record),
                  time_limit_s=time_limit, rounds=args.rounds, ours_form=form,
                  ours_interval=[round(v, 4) for v in (ours_r[-1]["low"], ours_r[-1]["high"])],
                  theirs_interval=[round(v, 4) for v in (theirs_r[-1]["low"], theirs_r[-1]["high"])])
    for name, runs in (("ours", ours_r), ("AutoGluon", theirs_r)):
        last = runs[-1]
        print(f"  {name:10s} test accuracy {median(runs, 'accuracy'):.4f} (95% CI {last['low']:.4f}-"
              f"{last['high']:.4f}), {median(runs, 'seconds'):.1f} s to a trained model")
    inside = line["theirs_interval"][0] <= line["ours_quality"] <= line["theirs_interval"][1] or \
        line["ours_quality"] >= line["theirs_quality"]
    print(f"  time ratio (AutoGluon / ours): {line['ratio']:.2f}x; ours is "
          f"{'within or above' if inside else 'below'} AutoGluon's accuracy interval")
    return 0
