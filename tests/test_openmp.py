"""`ladder` picks a short OpenMP spin before torch loads, and leaves a user's own choice alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from modelladder.openmp import SPINCOUNT, set_wait_policy


@pytest.mark.parametrize("chosen", [{}, {"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": "300000"}])
def test_set_wait_policy_sets_a_short_spin_unless_the_user_chose(monkeypatch, chosen):
    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in chosen.items():
        monkeypatch.setenv(key, value)
    set_wait_policy()
    expected = chosen.get("GOMP_SPINCOUNT", None if chosen else SPINCOUNT)
    assert os.environ.get("GOMP_SPINCOUNT") == expected
    assert os.environ.get("OMP_WAIT_POLICY") == chosen.get("OMP_WAIT_POLICY")


def test_the_cli_sets_it_before_torch_is_imported():
    # libgomp reads its settings once, when torch loads: importing the CLI must not load torch
    code = "import sys, modelladder.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
