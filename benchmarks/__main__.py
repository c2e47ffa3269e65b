"""python -m benchmarks NAME [--quick] [...]: run one benchmark module's main()."""

import importlib
import sys

from modelladder.openmp import set_wait_policy

BENCHMARKS = {
    "train_overhead": "benchmarks.train_overhead",
    "finetune": "benchmarks.finetune",
    "lm_pretrain": "benchmarks.lm_pretrain",
    "serve": "benchmarks.serve",
    "openmp_wait": "benchmarks.openmp_wait",
    "automl": "benchmarks.automl",
    "ladder_parallel": "benchmarks.ladder_parallel",
    "tuning": "benchmarks.tuning",
    "g2p": "benchmarks.g2p",
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        print(f"usage: python -m benchmarks {{{','.join(BENCHMARKS)}}} [--quick]", file=sys.stderr)
        return 2
    set_wait_policy()  # as `ladder` does, before torch is imported, for every contender (modelladder/openmp.py)
    module = importlib.import_module(BENCHMARKS[sys.argv[1]])
    return module.main(sys.argv[2:])


raise SystemExit(main())
