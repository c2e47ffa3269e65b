"""The GPU check's driver: python -m benchmarks.gpu.check [--dry-run] (benchmarks/gpu/run.sh calls it).

In order, each part's figures written to OUT/gpu_check.json as soon as it ends (OUT: $OUT, else
benchmarks/results/gpu), so a check stopped at its time limit keeps what it measured:
1. the machine: torch, CUDA, the card's name and count, the imports the check needs;
2. the configs: configs/pretrain/*.yaml validate;
3. the tests marked gpu (tests/gpu/), in a pytest subprocess with MODELLADDER_GPU=1 (--dry-run: without it,
   so they must all skip, saying why);
4. time to held-out loss 1.47 on Tiny Shakespeare, ours vs nanoGPT, with MFU (benchmarks/gpu/lm.py);
5. the MiniLM fine-tune, ours vs Trainer (benchmarks/gpu/finetune.py).
--dry-run runs all of it on the CPU with a few steps of tiny models: it checks the plumbing, measures nothing.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
NEEDED = ["pydantic", "yaml", "numpy", "pandas", "sklearn", "scipy", "safetensors", "tokenizers", "transformers",
          "accelerate", "fastapi", "fastapi_offline", "httpx", "skops", "codecarbon", "pytest"]


def machine(dry_run: bool) -> dict:
    """What the check runs on; the imports it needs (--dry-run: only found, importing them all takes seconds)."""
    cuda = torch.cuda.is_available()
    missing = []
    for name in NEEDED:
        try:
            if importlib.util.find_spec(name) is None:
                raise ModuleNotFoundError(f"no module named {name!r}")
            if not dry_run:
                importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - any import failure is what this part reports
            missing.append(f"{name}: {type(err).__name__}: {err}")
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": cuda,
            "cards": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
            "python": sys.version.split()[0], "missing_imports": missing}


def configs() -> dict:
    from modelladder.config import load_run_config

    names = sorted(p.name for p in (REPO / "configs" / "pretrain").glob("*.yaml"))
    for name in names:
        load_run_config(REPO / "configs" / "pretrain" / name)
    return {"validated": names}


def gpu_tests(dry_run: bool) -> dict:
    env = {**os.environ, "MODELLADDER_GPU": "0" if dry_run else "1", "PYTHONUNBUFFERED": "1"}
    # a test's time limit (pytest-timeout): a hung nccl group fails its test, not the whole check
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-o", "timeout=240", "-m", "gpu",
               "tests/gpu"]
    if not dry_run:
        command.append("-s")  # the tests print the differences they allow
    start = time.perf_counter()
    done = subprocess.run(command, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=480)
    print(done.stdout[-20000:], done.stderr[-5000:], sep="\n", flush=True)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary)}
    skips = re.findall(r"^SKIPPED \[\d+\] .*?: (.*)$", done.stdout, re.MULTILINE)
    result = {"returncode": done.returncode, "summary": summary, "counts": counts, "seconds": time.perf_counter() - start,
              "skip_reasons": sorted(set(skips))}
    if dry_run:  # every gpu test must have skipped, each saying it is a GPU test and why
        result["ok"] = done.returncode == 0 and counts.get("skipped", 0) > 0 and set(counts) == {"skipped"} and \
            all("GPU TEST SKIPPED" in s for s in skips)
    else:
        result["ok"] = done.returncode == 0 and counts.get("passed", 0) > 0
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu.check")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU, a few steps of tiny models")
    parser.add_argument("--lm-seconds", type=float, default=150.0, help="training seconds each lm contender gets")
    parser.add_argument("--sentences", type=int, default=8000, help="SST-2 training sentences of the fine-tune")
    parser.add_argument("--only", nargs="+", choices=["machine", "configs", "tests", "lm", "finetune"],
                        help="these parts alone")
    args = parser.parse_args(argv)
    out = Path(os.environ.get("OUT") or REPO / "benchmarks" / "results" / "gpu")
    out.mkdir(parents=True, exist_ok=True)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "dry_run": args.dry_run}
    parts = {
        "machine": lambda: machine(args.dry_run),
        "configs": configs,
        "tests": lambda: gpu_tests(args.dry_run),
        "lm": lambda: __import__("benchmarks.gpu.lm", fromlist=["main"]).main(args.dry_run, args.lm_seconds),
        "finetune": lambda: __import__("benchmarks.gpu.finetune", fromlist=["main"]).main(args.dry_run, args.sentences),
    }
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device: the GPU check needs one (or --dry-run)", file=sys.stderr)
        return 2
    failed = []
    for name, part in parts.items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            report[name] = part()
        except Exception as err:  # noqa: BLE001 - one part's failure is recorded, the next parts still run
            traceback.print_exc()
            report[name] = {"error": f"{type(err).__name__}: {err}"}
        report[name]["part_seconds"] = round(time.perf_counter() - start, 1)
        if "error" in report[name] or report[name].get("ok") is False or report[name].get("missing_imports"):
            failed.append(name)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"== done: {out / 'gpu_check.json'}; " + (f"FAILED: {', '.join(failed)}" if failed else "every part ran"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
