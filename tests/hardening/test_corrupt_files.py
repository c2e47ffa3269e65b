"""Truncated and bit-flipped weights and checkpoints are found (sha256 recorded beside the tensors)
and refused with exit status 2 and a message naming the file; nothing loads silently wrong weights."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from modelladder.cli import main


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_bit(path: Path, where: float = 0.75) -> None:
    """Flip one bit at `where` of the file: 0.75 lands in the tensor bytes, past the header."""
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x10
    path.write_bytes(bytes(data))


def expect_refused(capsys, argv: list, message: str) -> None:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err


@pytest.fixture
def run(trained_runs, tmp_path) -> Path:
    return Path(shutil.copytree(trained_runs["tabular"], tmp_path / "runs" / "people"))


def resume(run: Path, tmp_path: Path) -> list:
    config = tmp_path / "people.yaml"
    config.write_text((run / "config.yaml").read_text())
    return ["train", config, "--runs-dir", run.parent, "--name", run.name, "--resume"]


@pytest.mark.parametrize("damage", [truncate, flip_bit])
@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors"])
def test_a_damaged_checkpoint_is_found_on_resume(run, tmp_path, capsys, damage, name):
    step = max((run / "checkpoints").glob("step-*"))
    damage(step / name)
    expect_refused(capsys, resume(run, tmp_path),
                   rf"error: checkpoint file {re.escape(str(step / name))} is corrupt or truncated: "
                   r"sha256 [0-9a-f]{64} does not match the recorded [0-9a-f]{64}")


@pytest.mark.parametrize("damage", [truncate, flip_bit])
def test_a_damaged_checkpoint_state_is_found_on_resume(run, tmp_path, capsys, damage):
    state = max((run / "checkpoints").glob("step-*")) / "state.json"
    damage(state)
    expect_refused(capsys, resume(run, tmp_path), rf"error: checkpoint file {re.escape(str(state))} is "
                                                  r"(not valid JSON .*: the file is corrupt|corrupt: its content)")


@pytest.mark.parametrize(("damage", "message"), [
    (truncate, "is not a valid safetensors file"),
    (flip_bit, r"is corrupt: the sha256 of its tensors [0-9a-f]{64} does not match the recorded [0-9a-f]{64}"),
])
def test_damaged_model_weights_are_found_by_predict_and_serve(run, tmp_path, capsys, damage, message):
    damage(run / "model.safetensors")
    (tmp_path / "rows.csv").write_text("age,income,city\n30,50,oslo\n")
    named = rf"error: weights file {re.escape(str(run / 'model.safetensors'))} {message}"
    expect_refused(capsys, ["predict", run, tmp_path / "rows.csv"], named)
    expect_refused(capsys, ["serve", run, "--port", "1"], named)


def test_a_flipped_bit_anywhere_in_the_weights_file_is_found(run, tmp_path, capsys):
    """Every byte position of a small file: a flip is refused, or (in JSON whitespace) harmless."""
    from modelladder.serve.predictor import Predictor

    weights = run / "model.safetensors"
    clean = weights.read_bytes()
    expected = Predictor.load(run).model.state_dict()
    for position in range(0, len(clean), max(1, len(clean) // 400)):
        weights.write_bytes(clean[:position] + bytes([clean[position] ^ 0x01]) + clean[position + 1:])
        try:
            loaded = Predictor.load(run).model.state_dict()
        except Exception as err:  # noqa: BLE001 (the type is what is checked)
            assert type(err).__name__ == "InputError", (position, err)
            continue
        assert all((loaded[k] == v).all() for k, v in expected.items()), position
