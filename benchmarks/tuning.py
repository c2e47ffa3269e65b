"""Issue 17's `tuning`: what an equal tuning budget buys each rung of the Adult fairness ladder, and what it costs.

Two `ladder run configs/ladders/adult.yaml` subprocesses on the same split and seed (the ladder's seed 0), each into
its own temporary runs folder: untuned, and with `--set tune.trials=N` (default 20: every rung gets N Optuna trials
on the validation split, the best retrained once and scored on test; docs/tune.md). All four rungs are kept
(logreg, hist_gb, mlp, mlp_dp): the DP-SGD MLP is tuned like the others (about 12 s a training here, so 20 trials
add about 4 minutes); `--rungs` restricts the ladder to some of them through a generated copy of adult.yaml.

Printed per rung: test accuracy with its 95% interval untuned and tuned, the tuned minus untuned difference with a
paired bootstrap interval and an exact McNemar p (both rungs predict the same test rows: predictions_test.csv),
the untuned train_seconds, and the tuned rung's seconds in all (its trials' durations from tune/trials.csv plus
the retrain's train_seconds). Then the wall time of each whole `ladder` process. One line is appended to
benchmarks/results/tuning.jsonl (peer `untuned`, unit s: tuned wall vs untuned wall; quality: the best rung's
test accuracy), unless --no-record or --quick.
--quick: 2,000 training rows, 2 epochs, 2 trials, rungs logreg and mlp (unless --rungs), no mitigation (too few rows
for every race group in val); a smoke run, not a measurement.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.common import record

REPO = Path(__file__).resolve().parents[1]
LADDER = REPO / "configs" / "ladders" / "adult.yaml"
QUICK_RUNGS = ["logreg", "mlp"]  # one scikit-learn rung, one network
QUICK_SETS = ["data.limit=2000", "train.epochs=2", "audit.mitigate=false"]  # mitigation needs every race group in val


def ladder_command(config: Path, runs_dir: Path, trials: int | None, quick: bool) -> list[str]:
    sets = ["train.progress=false"] + (QUICK_SETS if quick else [])
    if trials:
        sets.append(f"tune.trials={trials}")
    return [sys.executable, "-m", "modelladder", "run", str(config), "--runs-dir", str(runs_dir), "--overwrite",
            *[a for s in sets for a in ("--set", s)]]


def restricted_config(rungs: list[str], folder: Path) -> Path:
    """adult.yaml with only `rungs` (in its order), written to `folder`; adult.yaml itself for no restriction."""
    if not rungs:
        return LADDER
    ladder = yaml.safe_load(LADDER.read_text())
    names = [r["name"] for r in ladder["rungs"]]
    unknown = sorted(set(rungs) - set(names))
    if unknown:
        raise SystemExit(f"--rungs: no rung {', '.join(unknown)} in {LADDER.name} (rungs: {', '.join(names)})")
    ladder["rungs"] = [r for r in ladder["rungs"] if r["name"] in rungs]
    path = folder / "adult.yaml"
    path.write_text(yaml.safe_dump(ladder, sort_keys=False))
    return path


def run_ladder(command: list[str], runs_dir: Path) -> dict:
    """One `ladder run` process: its wall time and its leaderboard.json rows (stderr shown if it fails)."""
    started = time.perf_counter()
    done = subprocess.run(command, check=False, cwd=REPO, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:])} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return {"wall_s": seconds, "rows": json.loads((runs_dir / "adult" / "leaderboard.json").read_text())}


def trial_seconds(trials_csv: Path) -> float:
    """The summed duration_s of a study's trials (tune/trials.csv), 0 when there is no such file."""
    if not trials_csv.is_file():
        return 0.0
    with open(trials_csv, newline="") as f:
        return sum(float(row["duration_s"]) for row in csv.DictReader(f) if row.get("duration_s") not in (None, ""))


def paired(untuned_csv: Path, tuned_csv: Path, seed: int) -> dict | None:
    """Tuned minus untuned test accuracy on the same rows: a paired bootstrap 95% interval and McNemar's exact p;
    None when the two files do not hold the same rows."""
    from modelladder.evaluate.paired import paired_bootstrap
    from modelladder.evaluate.significance import mcnemar_p
    from modelladder.report.steps import load_predictions, per_example_values

    a, b = load_predictions(untuned_csv), load_predictions(tuned_csv)
    if a is None or b is None or len(a) != len(b) or not (a["true"].to_numpy() == b["true"].to_numpy()).all():
        return None
    correct_a, correct_b = per_example_values(a, "accuracy"), per_example_values(b, "accuracy")
    diff = paired_bootstrap(correct_a, correct_b, seed=seed)
    return {"diff": diff.value, "low": diff.low, "high": diff.high, "mcnemar_p": mcnemar_p(correct_a, correct_b)}


def rung_lines(untuned: list[dict], tuned: list[dict], untuned_root: Path, tuned_root: Path, seed: int) -> list[dict]:
    """One dict per rung present in both leaderboards: accuracies with intervals, the paired difference, seconds."""
    by_name = {r["rung"]: r for r in tuned}
    out = []
    for u in untuned:
        t = by_name.get(u["rung"])
        if t is None or u.get("status") != "ok" or t.get("status") != "ok":
            out.append({"rung": u["rung"], "status": f"untuned {u.get('status')}, tuned {(t or {}).get('status')}"})
            continue
        folder = tuned_root / str(t["rung"])
        trials_s = trial_seconds(folder / "tune" / "trials.csv")
        line = {"rung": u["rung"],
                "untuned": [u.get("test_accuracy"), u.get("test_accuracy_low"), u.get("test_accuracy_high")],
                "tuned": [t.get("test_accuracy"), t.get("test_accuracy_low"), t.get("test_accuracy_high")],
                "tune_trials": t.get("tune_trials"), "tune_budget": t.get("tune_budget"),
                "untuned_train_s": u.get("train_seconds"), "tuned_trials_s": round(trials_s, 2),
                "tuned_total_s": round(trials_s + (t.get("train_seconds") or 0.0), 2)}
        pair = paired(untuned_root / str(u["rung"]) / "predictions_test.csv", folder / "predictions_test.csv", seed)
        if pair is not None:
            line["paired"] = {k: round(v, 4) for k, v in pair.items()}
        best = folder / "tune.json"
        if best.is_file():
            line["best_params"] = json.loads(best.read_text()).get("best_params")
        out.append(line)
    return out


def interval(acc: list) -> str:
    value, low, high = acc
    if value is None:
        return "-"
    return f"{value:.4f} [{low:.4f}, {high:.4f}]" if low is not None and high is not None else f"{value:.4f}"


def table(lines: list[dict]) -> str:
    head = (f"{'rung':10s} {'untuned acc [95%]':26s} {'tuned acc [95%]':26s} {'tuned - untuned [95%]':26s} "
            f"{'McNemar p':>9s} {'untuned s':>9s} {'tuned s':>9s}")
    rows = [head]
    for line in lines:
        if "untuned" not in line:
            rows.append(f"{line['rung']:10s} {line['status']}")
            continue
        pair = line.get("paired")
        diff = f"{pair['diff']:+.4f} [{pair['low']:+.4f}, {pair['high']:+.4f}]" if pair else "-"
        p = f"{pair['mcnemar_p']:.3g}" if pair else "-"
        seconds = line["untuned_train_s"]
        rows.append(f"{line['rung']:10s} {interval(line['untuned']):26s} {interval(line['tuned']):26s} {diff:26s} "
                    f"{p:>9s} {(seconds if seconds is not None else float('nan')):9.1f} {line['tuned_total_s']:9.1f}")
    return "\n".join(rows)


def best_accuracy(rows: list[dict]) -> float:
    return max((r.get("test_accuracy") or 0.0) for r in rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks tuning")
    parser.add_argument("--trials", type=int, default=20, help="trials per rung (default 20)")
    parser.add_argument("--rungs", nargs="+", default=[], help="only these rungs of adult.yaml (default: all)")
    parser.add_argument("--quick", action="store_true", help="2,000 training rows, 2 epochs, 2 trials, logreg and mlp")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results/tuning.jsonl")
    args = parser.parse_args(argv)
    trials = 2 if args.quick else args.trials
    seed = yaml.safe_load(LADDER.read_text()).get("seed", 0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = restricted_config(args.rungs or (QUICK_RUNGS if args.quick else []), tmp)
        runs = {"untuned": tmp / "untuned", "tuned": tmp / "tuned"}
        commands = {"untuned": ladder_command(config, runs["untuned"], None, args.quick),
                    "tuned": ladder_command(config, runs["tuned"], trials, args.quick)}
        out = {}
        for name in ("untuned", "tuned"):
            print(f"  {name}: {' '.join(commands[name][2:])}", flush=True)
            out[name] = run_ladder(commands[name], runs[name])
            print(f"  {name}: {out[name]['wall_s']:.1f} s", flush=True)
        lines = rung_lines(out["untuned"]["rows"], out["tuned"]["rows"], runs["untuned"] / "adult",
                           runs["tuned"] / "adult", seed)
    untuned_s, tuned_s = out["untuned"]["wall_s"], out["tuned"]["wall_s"]
    shown = ladder_command(Path("configs/ladders/adult.yaml"), Path("RUNS"), trials, args.quick)[2:]
    line = record("tuning", "untuned", unit="s", ours=tuned_s, theirs=untuned_s, higher_is_better=False,
                  quality_metric="best rung test_accuracy", ours_quality=best_accuracy(out["tuned"]["rows"]),
                  theirs_quality=best_accuracy(out["untuned"]["rows"]), command=" ".join(shown),
                  write=not (args.quick or args.no_record), trials=trials, rungs=lines, quick=args.quick,
                  cpus=os.cpu_count(), load_avg_at_end=round(os.getloadavg()[0], 2))
    print(json.dumps(line))
    print(table(lines))
    print(f"whole ladder: untuned {untuned_s:.1f} s, tuned ({trials} trials per rung) {tuned_s:.1f} s "
          f"({tuned_s / untuned_s:.1f}x the time); best rung test accuracy untuned {line['theirs_quality']:.4f}, "
          f"tuned {line['ours_quality']:.4f}")
    return 0
