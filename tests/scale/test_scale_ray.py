"""`ladder scale --executor ray`: the grid's runs as Ray tasks (a local Ray the command starts) reach the serial
runs' held-out losses exactly: the same seeds, the same one thread per run."""

from __future__ import annotations

import pandas as pd
import pytest

from modelladder.cli import main as cli_main
from tests.pretrain.helpers import write_corpus
from tests.scale.test_scale_e2e import CONFIG


@pytest.mark.slow
def test_the_grid_on_ray_gives_the_serial_losses(tmp_path, capsys):
    corpus = write_corpus(tmp_path)
    data = ["--set", "data.dataset=text", "--set", f"data.path={corpus}", "--set", "data.limit=null",
            "--set", "scale.bootstrap=0"]
    assert cli_main(["scale", str(CONFIG), "--runs-dir", str(tmp_path / "serial"), *data]) == 0
    assert cli_main(["scale", str(CONFIG), "--runs-dir", str(tmp_path / "ray"), *data,
                     "--executor", "ray", "--workers", "2"]) == 0
    serial, parallel = (pd.read_csv(tmp_path / where / "tiny_chars_scale" / "runs.csv") for where in ("serial", "ray"))
    assert len(serial) == 4 and serial["loss"].notna().all()
    assert serial["loss"].tolist() == parallel["loss"].tolist()
    assert serial["size"].tolist() == parallel["size"].tolist()
