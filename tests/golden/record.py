"""Golden loss curves: every recipe cut to a few steps, and the first N train losses of each run folder it makes.

Re-record (only when a change of training is intended; from the repository root):
    MODELLADDER_DATA=../shared/data HF_HUB_OFFLINE=1 python -m tests.golden.record [RECIPE ...]
writes tests/golden/<recipe-id>.json. tests/test_golden_curves.py re-runs the same cut and compares.

Only modelladder.cli.main, config.deep_merge and the run folders' files are used: internal modules may move.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from modelladder.config import deep_merge  # the ladder's own merge of a rung's train section

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent
N = 5  # optimizer steps per run folder, each one logged
N_PRETRAINED = 2  # steps of a pretrained Hugging Face model (MiniLM, SmolLM2): seconds each on a 2-core CPU
PRETRAINED = ("hf", "hf_causal_lm")  # model.name values that load such a model
EVAL_LIMIT = 60  # test examples scored (and timed) per run; clip_digits' stratified sample needs its 50 classes
CHAR_LIMIT = 300_000  # characters of a pretraining corpus: enough for N batches and one held-out window
LM_TASKS = ("causal_lm", "masked_lm")  # their data.limit counts characters, not examples
DEFAULT_BATCH = 64  # train.batch_size when a recipe leaves it unset


def recipes() -> list[Path]:
    """Every CPU recipe: the YAML files under configs/ and the default ladder that `ladder run` uses. A GPU recipe
    (train.device: cuda, bf16) is left out: cut to the CPU in fp32 it would check another training than its own, at
    ~110 s for nanoGPT's GPU size; benchmarks/gpu/run.sh trains it where it runs (tests/gpu checks its resume)."""
    paths = sorted((REPO / "configs").rglob("*.yaml")) + [REPO / "src" / "modelladder" / "recipes" / "digits.yaml"]
    raws = {p: yaml.safe_load(p.read_text()) for p in paths}
    # a `ladder scale` grid is many pretrain runs of its base; tests/scale runs the tiny one end to end
    return [p for p, raw in raws.items() if (raw.get("train") or {}).get("device") != "cuda" and "scale" not in raw]


def recipe_id(path: Path) -> str:
    return ".".join(path.resolve().relative_to(REPO).with_suffix("").parts)  # configs.ladders.mnist


def golden_path(path: Path) -> Path:
    return GOLDEN / f"{recipe_id(path)}.json"


def verb_of(path: Path, raw: dict) -> str:
    if path.resolve().parent == REPO / "configs" / "pretrain":
        return "pretrain"
    return "run" if "rungs" in raw else "train"


def _cut_train(train: dict, model: dict) -> None:
    train["max_steps"] = N_PRETRAINED if model.get("name") in PRETRAINED else N
    train["log_every"] = 1  # every step's loss in metrics.jsonl
    train["progress"] = False
    train.pop("checkpoint_every", None)


def _cut_data(data: dict, task: dict, trains: list[dict]) -> None:
    """A small data.limit: characters for a corpus, else 2 * N * the largest batch of rows (N full batches in the
    first epoch, with room for the validation split)."""
    if task.get("name") in LM_TASKS:
        limit = CHAR_LIMIT
    else:
        limit = 2 * N * max(train.get("batch_size", DEFAULT_BATCH) for train in trains)
    data["limit"] = min(data.get("limit") or limit, limit)


def golden_cut(raw: dict) -> dict:
    """The recipe cut to N steps (N_PRETRAINED for pretrained models) on little data; the model, optimizer, schedule
    and batch sizes stay as they are."""
    cut = copy.deepcopy(raw)
    train = cut.setdefault("train", {})
    _cut_train(train, cut.get("model", {}))
    rungs = []  # the rungs' own train sections (merged onto the ladder's)
    for rung in cut.get("rungs", []):
        if "train" in rung or rung["model"].get("name") in PRETRAINED:
            _cut_train(rung.setdefault("train", {}), rung["model"])
            rungs.append(rung["train"])
    _cut_data(cut.setdefault("data", {}), cut.get("task", {}), [train] + [deep_merge(train, r) for r in rungs])
    if "audit" in cut:  # fitted after training, it needs both labels of every small group in the little val split
        cut["audit"]["mitigate"] = False
    for stage in cut.get("pretrain", []):  # a stage has its own data and train (it does not inherit the ladder's)
        _cut_train(stage.setdefault("train", {}), stage["model"])
        _cut_data(stage.setdefault("data", {}), stage.get("task", {"name": "causal_lm"}), [stage["train"]])
    evaluation = cut.setdefault("eval", {})
    evaluation["limit"] = min(evaluation.get("limit") or EVAL_LIMIT, EVAL_LIMIT)
    if "beam" in evaluation:  # seq2seq: greedy decoding scores the few test words; training is what is compared
        evaluation["beam"] = 1
    evaluation.pop("classifier", None)  # a trained runs/mnist-classifier only scores generated images after training
    return cut


def datasets(cut: dict) -> list[str]:
    """The data.dataset names a cut recipe reads (its own and its pretrain stages')."""
    sections = [cut.get("data", {}), *(stage.get("data", {}) for stage in cut.get("pretrain", []))]
    return sorted({section.get("dataset", "digits") for section in sections})


def run_recipe(path: Path, workdir: Path) -> dict:
    """Run the cut recipe through `ladder VERB` in `workdir`; the golden record of what it wrote."""
    import torch  # only to restore the thread count a recipe's train.threads sets for the whole process

    from modelladder.cli import main

    raw = yaml.safe_load(path.read_text())
    verb = verb_of(path, raw)
    cut = golden_cut(raw)
    config, runs = workdir / path.name, workdir / "runs"
    config.write_text(yaml.safe_dump(cut, sort_keys=False))
    threads = torch.get_num_threads()
    started = time.perf_counter()
    try:
        with contextlib.chdir(workdir):  # anything a recipe writes relative to the working directory stays here
            status = main([verb, str(config), "--runs-dir", str(runs)])
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"ladder {verb} {path} (golden cut) exited with status {status}")
    curves = {}
    for metrics in sorted(runs.rglob("metrics.jsonl")):
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        losses = [r["loss"] for r in records if r.get("split") == "train" and "loss" in r]
        curves[metrics.parent.relative_to(runs).as_posix()] = losses[:N]
    return {"recipe": path.resolve().relative_to(REPO).as_posix(), "verb": verb, "n": N, "cut": cut,
            "curves": curves, "scores": _scores(runs, curves), "seconds": round(seconds, 1)}


def _scores(runs: Path, curves: dict) -> dict:
    """Rungs without metrics.jsonl (scikit-learn): their headline scores from leaderboard.json."""
    scores = {}
    for board in runs.glob("*/leaderboard.json"):
        for row in json.loads(board.read_text()):
            folder = f"{board.parent.name}/{row['rung']}"
            if any(name == folder or name.startswith(folder + "/") for name in curves):
                continue  # a neural rung: its curve is checked
            scores[folder] = {k: v for k, v in row.items() if k.startswith(("test_", "val_", "cv_"))
                              and not k.endswith(("_low", "_high")) and "_ece" not in k and _number(v)}
            # scores, not their intervals; nor ECE, whose bins turn a logreg's unconverged lbfgs (its log-loss moves
            # by 3e-4 between runs) into 7e-3
    return scores


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def record(path: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        os.environ["MODELLADDER_CACHE"] = str(Path(tmp) / "cache")  # cold, as each test's own cache is
        golden = run_recipe(path, Path(tmp))
    golden_path(path).write_text(json.dumps(golden, indent=1) + "\n")
    return golden


def main(argv: list[str]) -> int:
    import modelladder

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"recording with {Path(modelladder.__file__).parent}", file=sys.stderr)
    for path in [Path(a).resolve() for a in argv] or recipes():
        golden = record(path)
        print(f"{recipe_id(path)}: {len(golden['curves'])} curves, {len(golden['scores'])} scores, "
              f"{golden['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
