"""Checkpoint and weight files: round trips, atomic writes, and corruption caught with the file named."""

from __future__ import annotations

import json

import pytest
import torch

from modelladder.errors import InputError
from modelladder.train.checkpoint import latest_checkpoint, load_checkpoint, load_weights, save_checkpoint, save_weights
from tests.train.helpers import mlp, same_weights


def trained(optimizer_cls=torch.optim.AdamW, steps: int = 3):
    model = mlp(dropout=0.1)
    opt = optimizer_cls(model.parameters(), lr=0.01)
    for _ in range(steps):
        model(torch.randn(16, 8)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    return model, opt


@pytest.mark.parametrize("optimizer_cls", [torch.optim.AdamW, torch.optim.SGD, torch.optim.RMSprop])
def test_round_trip_restores_model_optimizer_and_state(optimizer_cls, tmp_path):
    model, opt = trained(optimizer_cls)
    path = save_checkpoint(tmp_path, model, opt, {"step": 123, "epoch": 1, "history": [{"loss": 0.5}]})
    assert path.name == "step-000123"
    assert sorted(p.name for p in path.iterdir()) == ["model.safetensors", "optimizer.safetensors", "state.json"]

    model2, opt2 = trained(optimizer_cls, steps=1)
    state = load_checkpoint(path, model2, opt2)
    assert state["step"] == 123 and state["history"] == [{"loss": 0.5}]
    assert same_weights(model, model2)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for key, value in a["state"][i].items():
            assert torch.equal(value, b["state"][i][key]) if torch.is_tensor(value) else value == b["state"][i][key]


def test_keeps_the_last_two_and_leaves_no_temporary_folders(tmp_path):
    model, opt = trained()
    for step in (5, 10, 15, 1000000):
        save_checkpoint(tmp_path, model, opt, {"step": step})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000015", "step-1000000"]
    assert latest_checkpoint(tmp_path).name == "step-1000000"  # by number, not by name
    assert latest_checkpoint(tmp_path / "none") is None


def test_saving_the_same_step_again_replaces_it(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path, model, opt, {"step": 5, "note": "first"})
    save_checkpoint(tmp_path, model, opt, {"step": 5, "note": "second"})
    assert [p.name for p in tmp_path.iterdir()] == ["step-000005"]
    assert load_checkpoint(tmp_path / "step-000005", model, opt)["note"] == "second"


def test_a_crash_leftover_is_never_the_latest_and_is_cleaned_up(tmp_path):
    model, opt = trained()
    (tmp_path / ".tmp-step-000099-1").mkdir(parents=True)  # as a crash during a write would leave it
    assert latest_checkpoint(tmp_path) is None
    save_checkpoint(tmp_path, model, opt, {"step": 3})
    assert [p.name for p in tmp_path.iterdir()] == ["step-000003"]


def flip_bit(path, offset=-10):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("filename", ["model.safetensors", "optimizer.safetensors"])
def test_bit_flip_and_truncation_are_caught(filename, tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path, model, opt, {"step": 1})
    original = (path / filename).read_bytes()
    flip_bit(path / filename)
    with pytest.raises(InputError, match=rf"checkpoint file .*{filename} is corrupt or truncated: sha256"):
        load_checkpoint(path, *trained())
    (path / filename).write_bytes(original[:-7])
    with pytest.raises(InputError, match=rf"{filename} is corrupt or truncated"):
        load_checkpoint(path, *trained())
    (path / filename).unlink()
    with pytest.raises(InputError, match=rf"checkpoint file .*{filename} is missing"):
        load_checkpoint(path, *trained())


def test_a_changed_state_json_is_caught(tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path, model, opt, {"step": 1, "epoch": 0})
    state = json.loads((path / "state.json").read_text())
    state["epoch"] = 1
    (path / "state.json").write_text(json.dumps(state))
    with pytest.raises(InputError, match=r"state.json is corrupt: its content does not match its sha256"):
        load_checkpoint(path, model, opt)
    (path / "state.json").write_text('{"step": ')
    with pytest.raises(InputError, match=r"state.json is not valid JSON"):
        load_checkpoint(path, model, opt)


def test_a_model_of_another_shape_is_refused_and_left_untouched(tmp_path):
    model, opt = trained()
    path = save_checkpoint(tmp_path, model, opt, {"step": 1})
    other = mlp(hidden=16, dropout=0.1)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(InputError, match=r"model.safetensors does not fit this model: tensor '0.bias' has shape "
                                         r"\(32,\), the model expects \(16,\); tensor '0.weight' has shape \(32, 8\)"):
        load_checkpoint(path, other, torch.optim.AdamW(other.parameters()))
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    with pytest.raises(InputError, match=r"unexpected tensors \['3.bias', '3.weight'\]"):
        load_checkpoint(path, torch.nn.Sequential(torch.nn.Linear(8, 32)), None)


def test_another_optimizer_is_refused(tmp_path):
    model, opt = trained(torch.optim.AdamW)
    path = save_checkpoint(tmp_path, model, opt, {"step": 1})
    with pytest.raises(InputError, match=r"holds AdamW state, but this run uses SGD"):
        load_checkpoint(path, model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_weights_round_trip_with_metadata_and_errors(tmp_path):
    model, _ = trained()
    path = save_weights(tmp_path / "model.safetensors", model, {"step": "3"})
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary file left
    fresh = mlp(dropout=0.1, seed=1)
    assert load_weights(path, fresh) == {"step": "3"}
    assert same_weights(model, fresh)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(InputError, match=r"weights file .*model.safetensors is not a valid safetensors file"):
        load_weights(path, fresh)
    with pytest.raises(InputError, match=r"missing\.safetensors is missing"):
        load_weights(tmp_path / "missing.safetensors", fresh)


def test_tied_weights_are_saved(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    model[1].weight = model[0].weight
    save_weights(tmp_path / "m.safetensors", model)
    other = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    load_weights(tmp_path / "m.safetensors", other)
    assert torch.equal(other[0].weight, model[0].weight) and torch.equal(other[1].weight, model[0].weight)


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from modelladder.train import checkpoint

    model, opt = trained()
    save_checkpoint(tmp_path, model, opt, {"step": 1})
    real_write = checkpoint._write_file

    def crash_on_state(path, data, atomic=True):
        if path.name == "state.json":
            raise KeyboardInterrupt  # killed half way through the folder
        real_write(path, data, atomic)

    monkeypatch.setattr(checkpoint, "_write_file", crash_on_state)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, model, opt, {"step": 2})
    assert latest_checkpoint(tmp_path).name == "step-000001"
    assert load_checkpoint(latest_checkpoint(tmp_path), *trained())["step"] == 1


def test_equal_weights_give_byte_identical_files(tmp_path):
    from safetensors import safe_open

    model, _ = trained()
    metadata = {"step": "3", "weights": "final", "alpha": "a", "zeta": "z"}
    files = [save_weights(tmp_path / f"{i}.safetensors", model, metadata).read_bytes() for i in range(6)]
    assert all(f == files[0] for f in files)  # safetensors alone orders metadata at random
    with safe_open(str(tmp_path / "0.safetensors"), "pt") as f:  # still a valid file for safetensors itself
        saved = f.metadata()
        assert len(saved.pop("sha256")) == 64 and saved == metadata  # plus the tensors' checksum
        assert torch.equal(f.get_tensor("0.weight"), model[0].weight)
