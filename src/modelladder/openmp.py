"""How long torch's OpenMP threads spin before they sleep, set before torch is imported (libgomp reads it once).

libgomp (torch's Linux CPU wheels) spins 300,000 times by default before a waiting thread sleeps. Once another
process shares the cores, the spinning threads steal each other's time slices. Measured here, `fit` on the
tutorial MLP at batch 64, 2 threads, samples/s (`python -m benchmarks openmp_wait` re-measures it):

    setting                  quiet machine   2 busy processes beside it
    libgomp default          106,000         529 (200x slower)
    OMP_WAIT_POLICY=PASSIVE   75,600         30,000
    GOMP_SPINCOUNT=10000     107,700         44,400

Sleeping at once (PASSIVE) costs 29% on a quiet machine, where each of a step's small parallel regions waits
for threads to wake; a short spin keeps the quiet speed and is the fastest under contention too.
"""

from __future__ import annotations

import os

SPINCOUNT = "10000"


def set_wait_policy() -> None:
    """GOMP_SPINCOUNT=10000 unless the user chose a policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT)."""
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
