"""Image preprocessing, image files in, and the random shift / rotate augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modelladder.data.images import augment, fit_image_preprocess
from modelladder.data.load import load_image_files, transform_raw
from modelladder.errors import InputError

MNIST_LIKE = {"kind": "image", "channels": 1, "height": 28, "width": 28, "pixel_max": 255.0,
              "normalize": True, "mean": [0.1307], "std": [0.3081]}


def batch(seed: int = 0, n: int = 16) -> torch.Tensor:
    """Normalised-looking images: a background of -0.42 with a bright square somewhere inside."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1, 12, 12), -0.42)
    for i in range(n):
        r, c = torch.randint(3, 7, (2,), generator=g).tolist()
        x[i, 0, r : r + 3, c : c + 3] = 2.8
    return x


def shifted(image: torch.Tensor, dy: int, dx: int, fill: float) -> torch.Tensor:
    out = torch.full_like(image, fill)
    h, w = image.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = \
        image[..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    return out


def test_no_augmentation_returns_the_batch_itself():
    x = batch()
    assert augment(x, 0, 0.0, torch.Generator().manual_seed(0)) is x


def test_augment_is_deterministic_given_the_generator():
    x = batch()
    a = augment(x, 2, 15.0, torch.Generator().manual_seed(3))
    b = augment(x, 2, 15.0, torch.Generator().manual_seed(3))
    c = augment(x, 2, 15.0, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_shift_moves_pixels_by_whole_pixels_and_pads_with_the_background():
    x = batch(n=32)
    out = augment(x, 2, 0.0, torch.Generator().manual_seed(0))
    moved = 0
    for image, result in zip(x, out):
        offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.allclose(result, shifted(image, dy, dx, -0.42), atol=1e-5)]
        assert len(offsets) == 1, "each image is its own copy shifted by whole pixels"
        moved += offsets[0] != (0, 0)
    assert moved >= 24  # 24 of the 25 offsets move the image


def test_rotation_changes_images_and_stays_within_their_range():
    x = batch()
    out = augment(x, 0, 30.0, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert (out - x).abs().amax(dim=(1, 2, 3)).gt(0.1).sum() >= 12
    assert out.min() >= -0.42 - 1e-5 and out.max() <= 2.8 + 1e-5


def test_fit_uses_every_channel_separately():
    x = np.zeros((4, 3, 2, 2), np.uint8)
    x[:, 1] = 255
    x[:2, 2] = 255
    state = fit_image_preprocess(x, pixel_max=255.0, normalize=True)
    assert state["mean"] == [0.0, 1.0, 0.5]
    assert state["std"] == [1.0, 1.0, 0.5]  # a constant channel keeps std 1
    assert state == fit_image_preprocess(x.astype(np.float64), pixel_max=255.0, normalize=True)
    plain = fit_image_preprocess(x, pixel_max=255.0, normalize=False)
    assert np.array_equal(transform_raw(plain, x), x / np.float32(255))


def test_transform_raw_accepts_both_shapes_and_names_a_wrong_one():
    raw = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    features = transform_raw(MNIST_LIKE, raw)
    assert features.shape == (5, 1, 28, 28) and features.dtype == np.float32
    assert np.array_equal(features, transform_raw(MNIST_LIKE, raw[:, None]))
    assert np.allclose(features, (raw[:, None] / 255.0 - 0.1307) / 0.3081, atol=1e-5)
    with pytest.raises(InputError, match=r"shape \(N, 28, 28\) or \(N, 1, 28, 28\), got \(5, 8, 8\)"):
        transform_raw(MNIST_LIKE, raw[:, :8, :8])


def test_image_files_are_converted_resized_and_rescaled(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (28, 28)).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(np.stack([gray] * 3, axis=-1)).save(tmp_path / "rgb.png")  # becomes gray again
    Image.fromarray(np.zeros((56, 40), np.uint8)).save(tmp_path / "big.jpg")
    features = load_image_files([tmp_path / "gray.png", tmp_path / "rgb.png", tmp_path / "big.jpg"], MNIST_LIKE)
    assert features.shape == (3, 1, 28, 28)
    assert np.allclose(features[0], transform_raw(MNIST_LIKE, gray[None])[0], atol=1e-6)
    assert np.allclose(features[1], features[0], atol=1e-6)
    assert np.allclose(features[2], -0.1307 / 0.3081, atol=1e-5)

    digits_like = dict(MNIST_LIKE, height=8, width=8, pixel_max=16.0, mean=[0.0], std=[1.0])
    white = tmp_path / "white.png"
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(white)
    assert np.allclose(load_image_files([white], digits_like), 1.0)  # 255 -> 16, the digits maximum


def test_a_corrupt_image_file_is_named(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(InputError, match=rf"image file {bad} is not a readable PNG or JPEG image"):
        load_image_files([bad], MNIST_LIKE)
    with pytest.raises(InputError, match=r"image file .*missing.png does not exist"):
        load_image_files([tmp_path / "missing.png"], MNIST_LIKE)
