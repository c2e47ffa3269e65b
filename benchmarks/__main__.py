"""python -m benchmarks NAME [--quick] [...]: run one benchmark module's main()."""

import importlib
import os
import sys

BENCHMARKS = {
    "train_overhead": "benchmarks.train_overhead",
    "finetune": "benchmarks.finetune",
    "lm_pretrain": "benchmarks.lm_pretrain",
    "serve": "benchmarks.serve",
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        print(f"usage: python -m benchmarks {{{','.join(BENCHMARKS)}}} [--quick]", file=sys.stderr)
        return 2
    # as `ladder` does (cli/__init__.py): spinning OpenMP waits make training in this process many times
    # slower once another process shares the cores; set before torch is imported, for both contenders
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    module = importlib.import_module(BENCHMARKS[sys.argv[1]])
    return module.main(sys.argv[2:])


raise SystemExit(main())
