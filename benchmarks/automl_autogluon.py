"""The peer side of benchmarks/automl.py, run by .venv-autogluon's Python (AutoGluon's pins clash with ours):
`TabularPredictor(label=LABEL).fit(train, time_limit=T)` as AutoGluon's quick start shows it, then predictions
for the test rows. Standalone: it imports neither modelladder nor the benchmarks package.

usage: python automl_autogluon.py TRAIN_CSV TEST_CSV LABEL TIME_LIMIT OUT_DIR
writes OUT_DIR/predictions.csv (one `prediction` per test row, in order) and OUT_DIR/timings.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

START = time.perf_counter()


def main(train_csv: str, test_csv: str, label: str, time_limit: str, out_dir: str) -> int:
    import pandas as pd
    from autogluon.tabular import TabularPredictor

    out = Path(out_dir)
    train = pd.read_csv(train_csv)
    fit_start = time.perf_counter()
    predictor = TabularPredictor(label=label, path=str(out / "model"), verbosity=1).fit(
        train, time_limit=float(time_limit))
    trained = time.perf_counter()
    test = pd.read_csv(test_csv).drop(columns=[label])
    pd.DataFrame({"prediction": predictor.predict(test).to_numpy()}).to_csv(out / "predictions.csv", index=False)
    done = time.perf_counter()
    leaderboard = predictor.leaderboard(silent=True)
    (out / "timings.json").write_text(json.dumps({
        "to_trained_s": trained - START,  # process start, imports, reading the CSV, fit: what `ladder run` takes
        "fit_s": trained - fit_start, "predict_s": done - trained,
        "best_model": str(predictor.model_best), "models": len(leaderboard),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
