"""imagefolder: a user's folder of PNG / JPEG images, one subfolder per class, trained on and predicted from."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.datasets
from PIL import Image

from modelladder.config import validate_run
from modelladder.data.load import load_data
from modelladder.errors import InputError
from tests.e2e.helpers import ladder


def write_digits(root, per_class: int = 30, size: int = 16, rgb_class: str | None = None):
    """Digits 0 and 1 from scikit-learn as PNG (and every third as JPEG) files in root/zero and root/one."""
    digits = sklearn.datasets.load_digits()
    for label, name in [(0, "zero"), (1, "one")]:
        folder = root / name
        folder.mkdir(parents=True)
        images = digits.images[digits.target == label][:per_class]
        for i, image in enumerate(images):
            img = Image.fromarray((image * 255 / 16).astype(np.uint8), mode="L").resize((size, size))
            if name == rgb_class:
                img = img.convert("RGB")
            img.save(folder / (f"{i:03d}.jpg" if i % 3 == 2 else f"{i:03d}.png"))
    return root


def load(root, **data):
    cfg = validate_run({"data": {"dataset": "imagefolder", "path": str(root), **data}, "model": {"name": "mlp"}})
    return load_data(cfg.data, seed=0, task="classification")


def test_a_folder_of_pngs_and_jpegs_becomes_an_image_dataset(tmp_path):
    root = write_digits(tmp_path / "images")
    (root / "zero" / ".DS_Store").write_bytes(b"\x00\x01")  # hidden files are skipped
    (root / "README.txt").write_text("files beside the class folders are not images of a class")
    data = load(root, split={"test": 0.2, "val": 0.25})
    assert data.classes == ["one", "zero"]
    assert data.input_shape == (1, 16, 16) and data.kind == "image"
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (36, 12, 12)
    assert np.bincount(data.y_test).tolist() == [6, 6]  # stratified
    assert data.preprocess["pixel_max"] == 255.0 and abs(data.X_train.mean()) < 1e-5  # standardised on train


def test_size_and_channels_come_from_the_config_or_the_first_image(tmp_path):
    root = write_digits(tmp_path / "images", per_class=10, rgb_class="one")
    assert load(root).input_shape == (3, 16, 16)  # "one" sorts first and is RGB
    assert load(root, image_size=8, channels=1).input_shape == (1, 8, 8)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("broken.png", b"\x89PNG\r\n\x1a\n not really", "is not a readable PNG or JPEG image"),
    ("notes.txt", b"some notes", ("is not an image (allowed: .png, .jpg, .jpeg, .bmp, .gif, .webp); "
                                  "move it out of the class folders")),
])
def test_a_bad_file_is_named(tmp_path, name, content, message):
    root = write_digits(tmp_path / "images", per_class=10)
    (root / "one" / name).write_bytes(content)
    with pytest.raises(InputError) as err:
        load(root)
    assert str(root / "one" / name) in str(err.value) and message in str(err.value)


def test_a_folder_without_class_subfolders_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(InputError, match="holds 1 class subfolder\\(s\\); it needs at least 2"):
        load(tmp_path)
    with pytest.raises(InputError, match="data.path is required for data.dataset 'imagefolder'"):
        load_data(validate_run({"data": {"dataset": "imagefolder"}, "model": {"name": "mlp"}}).data, seed=0,
                  task="classification")


def test_predictor_reads_image_files_of_an_imagefolder_run(tmp_path):
    from modelladder.serve.predictor import Predictor
    from modelladder.verbs.train import train_run

    root = write_digits(tmp_path / "images")
    cfg = validate_run({"data": {"dataset": "imagefolder", "path": str(root)}, "model": {"name": "mlp", "hidden": [32]},
                        "train": {"epochs": 15, "batch_size": 16, "progress": False, "threads": 1}})
    (tmp_path / "run").mkdir()
    train_run(cfg, tmp_path / "run")
    predictor = Predictor.load(tmp_path / "run")
    scores = predictor.predict_files([root / "zero" / "000.png", root / "one" / "002.jpg"])
    assert predictor.decode(scores).tolist() == ["zero", "one"]


@pytest.mark.slow  # two `ladder` processes: ~40 s on a busy 2-core machine
def test_train_then_predict_image_files_from_the_command_line(tmp_path):
    root = write_digits(tmp_path / "images")
    config = tmp_path / "imagefolder.yaml"
    config.write_text(f"data: {{dataset: imagefolder, path: {root}}}\nmodel: {{name: mlp, hidden: [32]}}\n"
                      "train: {epochs: 15, batch_size: 16, progress: false}\n")
    trained = ladder("train", config, "--runs-dir", tmp_path / "runs", "--name", "folder", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    predicted = ladder("predict", tmp_path / "runs" / "folder", root / "zero" / "000.png", root / "one" / "002.jpg",
                       cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.splitlines()
    assert lines[0] == "id,prediction,confidence"
    assert [line.split(",")[1] for line in lines[1:]] == ["zero", "one"]
