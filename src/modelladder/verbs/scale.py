"""`ladder scale CONFIG [--predict FLOPS] [--verify] [--executor serial|ray] [--resume]`: measured scaling laws.

The config is a `ladder pretrain` config of a causal_lm family, the Transformer or the recurrent LM (the family's
base run: corpus, tokenizer, context, optimizer) plus a `scale:` section (config.py ScaleSection): sizes (width/depth pairs, or parameter
counts) and compute budgets in FLOPs. Every size is trained at every budget (an IsoFLOP grid,
verbs/scale_grid.py), each an ordinary pretrain run folder RUN/scale/<budget>/<size>/ (config, checkpoints,
metrics, summary.json with its cost), all scored on the same held-out windows (the corpus's held-out text, cut
to scale.windows windows). Then the fits of evaluate/scaling.py: the Chinchilla paper's approach 3,
L(N, D) = E + A / N^alpha + B / D^beta, and approach 2 (IsoFLOP parabolas, N_opt ~ C^a, D_opt ~ C^b), with
bootstrap intervals over runs. RUN/ gets scale.yaml (the config), runs.csv, scale.json and three plots
(report/scaling.py).

`--predict FLOPS`: the compute-optimal N and D at that budget from the fitted law and the loss it predicts, with
its bootstrap interval. `--verify`: trains the width/depth nearest that N for that budget into
RUN/verify/<budget>/<size>/ and reports the relative error of the law's prediction for the run it trained.

Runs are independent: serial here by default, Ray tasks with --executor ray (verbs/executor.py). --resume keeps
the finished runs (their summary.json), continues the others from their last checkpoint and refits; it may extend
the grid with sizes or budgets (check_resumable).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from modelladder.config import RunConfig, ScaleSection, load_scale_config
from modelladder.data.batches import TokenWindows
from modelladder.errors import InputError
from modelladder.evaluate import scaling
from modelladder.runs import claim, prepare, read_json, run_path, write_csv, write_json, write_text
from modelladder.verbs.executor import Job, Outcome, executor_from, task_setup
from modelladder.verbs.pretrain import PretrainData, prepare_data, pretrain_run
from modelladder.verbs.resilience import one_line, record_failure
from modelladder.verbs.scale_grid import GridRun, nearest_shape, plan_grid, plan_run

FEW_STEPS = 200  # a run this short is named in a warning (the law is fitted on every run all the same)
FLOP_COUNTS = {
    "transformer": {"formula": "6 N + 12 L d T per token (nanoGPT's estimate_mfu count)",
                    "N": "non-embedding parameters: all but the token embedding, which the tied LM head reuses",
                    "L d T": "blocks x width x context: attention's scores and weighted sums"},
    "rnn": {"formula": "6 N per token",
            "N": "non-embedding parameters: the recurrent layers and the output projection (the token embedding "
                 "is a lookup)"},
}


def check_family(base: RunConfig) -> None:
    """A family whose FLOPs per token ladder scale counts: the causal Transformer or the recurrent LM."""
    if base.task.name != "causal_lm" or base.model.name not in FLOP_COUNTS:
        raise InputError(f"ladder scale trains a causal_lm family: task.name causal_lm and model.name transformer or "
                         f"rnn, got task.name '{base.task.name}' and model.name '{base.model.name}'")
    if base.data.split.val <= 0:
        raise InputError("ladder scale scores every run on held-out windows: data.split.val must be > 0, got 0")


def scale_data(cfg: RunConfig, windows: int | None) -> PretrainData:
    """The corpus's token files and windows, the held-out ones cut to the first `windows` (scale.windows)."""
    data = prepare_data(cfg)
    context = cfg.model.max_length
    if windows is not None:
        if len(data.val) < windows:
            raise InputError(f"scale.windows is {windows}, but the held-out text holds {len(data.val)} windows of "
                             f"{context} tokens: lower it or raise data.split.val")
        data.val = TokenWindows(data.tokens.val[: windows * context + 1], context)
    return data


def run_task(cfg: RunConfig, run_dir: Path, data: PretrainData | None, resume: bool, windows: int | None,
             in_task: bool) -> Outcome:
    """One run of the grid: continued from its last checkpoint with `resume` when it has one, else trained afresh
    into an empty `run_dir`; a failure is the run's error (error.txt), not an exception."""
    from modelladder.train.checkpoint import latest_checkpoint

    if in_task:  # a Ray task: the same threads wherever it runs
        task_setup(cfg)
    resuming = resume and latest_checkpoint(run_dir / "checkpoints") is not None
    if not resuming:
        prepare(run_dir, overwrite=True)
    try:
        data = data if data is not None else scale_data(cfg, windows)
        return Outcome(result=pretrain_run(cfg, run_dir, resume=resuming, data=data))
    except Exception as err:  # noqa: BLE001 - the run's failed row; the other runs go on
        record_failure(run_dir, err)
        return Outcome(error=one_line(err))


def finished(run: GridRun) -> bool:
    return (run.folder / "summary.json").is_file()


def train_runs(runs: list[GridRun], data: PretrainData, executor, *, resume: bool, windows: int | None) -> dict:
    """Train the runs not finished yet ({folder: error} for those that failed)."""
    todo = [r for r in runs if not finished(r)]
    if not todo:
        return {}
    for r in todo:
        print(f"to train: {r.folder} (N={r.n_params:,}, {r.tokens:,} tokens, {r.steps:,} steps)")
    shared = None if executor.parallel else data  # a Ray task reads the cached token files itself
    jobs = [Job(run_task, (r.cfg, r.folder, shared, resume, windows, executor.parallel), r.cfg) for r in todo]
    outcomes = executor.run(jobs)
    return {r.folder: o.error for r, o in zip(todo, outcomes, strict=True) if o.error is not None}


def collect(runs: list[GridRun], errors: dict) -> pd.DataFrame:
    """A row per run: its plan, its held-out loss and train seconds (from summary.json), or its error."""
    rows = []
    for r in runs:
        row = {**r.row(), "loss": np.nan, "train_seconds": np.nan, "error": errors.get(r.folder)}
        if finished(r):
            summary = read_json(r.folder / "summary.json")
            row.update(loss=summary["val"].get("loss", np.nan), train_seconds=summary["train_seconds"])
        elif row["error"] is None:
            row["error"] = "not finished"
        rows.append(row)
    return pd.DataFrame(rows)


def per_token_model(runs: pd.DataFrame):
    """FLOPs per token as a function of N for the law's compute-optimal search: 6 N times the grid's own ratio
    (6N + 12 L d T) / 6N, interpolated in log N between its sizes (the end sizes' ratio beyond them)."""
    sizes = runs.drop_duplicates("n_params").sort_values("n_params")
    log_n = np.log(sizes["n_params"].to_numpy(float))
    ratio = sizes["flops_per_token"].to_numpy(float) / (6 * sizes["n_params"].to_numpy(float))
    return lambda n: 6.0 * n * float(np.interp(np.log(n), log_n, ratio))


def fit(runs: pd.DataFrame, scale: ScaleSection, seed: int, predict: float | None) -> dict:
    """Both approaches on the finished runs, the compute-optimal run per budget (and at `predict`), intervals."""
    done = runs[runs["loss"].notna()]
    warnings = []
    if len(done) < 2 * len(scaling.LAW_PARAMS):
        warnings.append(f"{len(done)} finished runs for the law's {len(scaling.LAW_PARAMS)} parameters: the fit is "
                        "loosely determined (use 4 budgets x 4 sizes or more)")
    short = done[done["steps"] < FEW_STEPS]
    if len(short):
        names = ", ".join(f"{b:.3g}/{size}" for b, size in zip(short["budget"], short["size"], strict=True))
        warnings.append(f"{len(short)} runs trained fewer than {FEW_STEPS} steps ({names}): short runs are mostly "
                        "warmup and the unigram plateau, where the law may not hold; a larger budget or smaller "
                        "sizes give them more steps")
    if len(done) < 3:
        return {"law": None, "warnings": [*warnings, "fewer than 3 finished runs: no fit"]}
    n, d, loss, budget = (done[k].to_numpy(float) for k in ("n_params", "tokens", "loss", "budget"))
    per_token = per_token_model(done)
    n_range = (n.min() / 10, n.max() * 1000)
    law = scaling.fit_law(n, d, loss)
    two = scaling.approach2(budget, n, loss, per_token)
    if two["a"] is None:
        warnings.append("approach 2 needs 3 sizes or more at 2 budgets or more, each with a minimum")
    at = sorted(set(budget)) + ([predict] if predict else [])
    optimal = [{"budget": c, **scaling.compute_optimal(law, c, per_token, n_range)} for c in at]
    intervals = {}
    if scale.bootstrap:
        intervals = scaling.bootstrap({"budget": budget, "n": n, "d": d, "loss": loss}, law, per_token,
                                      samples=scale.bootstrap, seed=seed, predict_at=[predict] if predict else [],
                                      n_range=n_range)
    out = {"law": law.as_dict(), "intervals": intervals, "approach2": two, "optimal": optimal, "warnings": warnings}
    if predict:
        best = optimal[-1]
        out["prediction"] = {"flops": predict, "n_opt": best["n"], "d_opt": best["d"], "loss": best["loss"],
                             "loss_interval": intervals.get(f"loss@{predict:g}"),
                             "n_opt_interval": intervals.get(f"n@{predict:g}"),
                             "approach2_n_opt": two["n_opt_fit"]["k"] * predict ** two["a"] if two["a"] else None}
    return out


def verify(base: RunConfig, scale: ScaleSection, root: Path, result: dict, runs: pd.DataFrame, data, executor,
           *, resume: bool) -> dict:
    """Train the size nearest the predicted N_opt at the --predict budget; the law's error on it."""
    pred = result["prediction"]
    aspect = float(np.exp(np.median(np.log(runs["dim"] / runs["depth"]))))
    dim, depth = nearest_shape(base, pred["n_opt"], scale.head_dim, aspect)
    run = plan_run(base, dim, depth, pred["flops"], scale.head_dim, root / "verify", "--predict")
    errors = train_runs([run], data, executor, resume=resume, windows=scale.windows)
    row = collect([run], errors).iloc[0]
    law = scaling.Law(**result["law"])
    predicted = float(law.loss(run.n_params, run.tokens))
    out = {**run.row(), "predicted_loss": predicted, "loss": None if np.isnan(row["loss"]) else float(row["loss"]),
           "error": row["error"]}
    if out["loss"] is not None:
        out["relative_error"] = (out["loss"] - predicted) / predicted
    return out


RUN_FIELDS = ("head_dim", "windows")  # the scale fields a finished run depends on besides its size and budget


def check_resumable(root: Path, config: dict) -> None:
    """--resume may extend the grid (sizes, budgets or bootstrap changed: the finished runs are kept), but not
    change what a finished run was: the base run config, scale.head_dim or scale.windows."""
    path = root / "scale.yaml"
    if not path.is_file():
        return
    before = yaml.safe_load(path.read_text())
    changed = sorted(k for k in set(before) | set(config) if k != "scale" and before.get(k) != config.get(k))
    changed += [f"scale.{k}" for k in RUN_FIELDS if before.get("scale", {}).get(k) != config["scale"][k]]
    if changed:
        raise InputError(f"--resume: {', '.join(changed)} differ from the runs' config in {path}; only scale.sizes, "
                         "scale.params, scale.budgets and scale.bootstrap may change on --resume. Start afresh with "
                         "--overwrite or another --name")


def parse_flops(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"--predict must be a number of FLOPs > 0 such as 4e13, got {text!r}")
    return value


def main(args) -> int:
    """`ladder scale CONFIG [--set ...] [--name] [--runs-dir] [--resume | --overwrite] [--predict FLOPS [--verify]]
    [--executor ...]`."""
    from modelladder.report.scaling import write_plots
    from modelladder.verbs.scale_report import print_scale

    base, scale = load_scale_config(args.config, args.overrides)
    check_family(base)
    predict = parse_flops(args.predict)
    if args.verify and predict is None:
        raise InputError("--verify trains the compute-optimal run of --predict FLOPS: give --predict too")
    executor = executor_from(args)
    root = run_path(args.runs_dir, args.name or base.name or Path(args.config).stem)
    grid = plan_grid(base, scale, root)  # a budget too small for a size fails here, before any folder
    config = {**base.model_dump(mode="json", by_alias=True), "scale": scale.model_dump()}
    if args.resume:
        check_resumable(root, config)
    data, root = claim(root, overwrite=args.overwrite, resume=args.resume,
                       load=lambda: scale_data(base, scale.windows))
    write_text(root / "scale.yaml", yaml.safe_dump(config, sort_keys=False))
    with executor:
        errors = train_runs(grid, data, executor, resume=args.resume, windows=scale.windows)
        runs = collect(grid, errors)
        result = {"family": base.model.name, "flops_per_token": FLOP_COUNTS[base.model.name], "runs": json.loads(runs.to_json(orient="records")),
                  **fit(runs, scale, base.seed, predict)}
        if args.verify and result["law"] is not None:
            result["verify"] = verify(base, scale, root, result, runs, data, executor, resume=args.resume)
    write_csv(root / "runs.csv", runs, index=False)
    done = runs[runs["loss"].notna()]
    result["plots"] = write_plots(done, scaling.Law(**result["law"]) if result["law"] else None,
                                  result.get("approach2", {}).get("minima", []), root) if len(done) else []
    write_json(root / "scale.json", result)
    print_scale(root, runs, result)
    return 0 if not errors else 1
