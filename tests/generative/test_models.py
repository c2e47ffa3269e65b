"""The generative models' shapes: the tutorial autoencoder exactly, conv coders on odd sizes, DCGAN sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from modelladder.config import load_run_config
from modelladder.errors import InputError
from modelladder.models.autoencoder import Autoencoder
from modelladder.models.build import build_model, count_params
from modelladder.models.gan import GAN
from modelladder.models.vae import VAE

REPO = Path(__file__).resolve().parents[2]


def test_tutorial_autoencoder_config_is_the_tutorial_network():
    cfg = load_run_config(REPO / "configs" / "tutorial_autoencoder_mnist.yaml")
    assert (cfg.data.dataset, cfg.data.normalize, cfg.task.name, cfg.task.loss) == ("mnist", False, "reconstruction", "bce")
    assert cfg.train.optimizer.name == "adam"
    model = build_model(cfg.model, (1, 28, 28), 10, seed=0)
    layers = [type(m) for m in [*model.encoder, *model.decoder]]
    assert layers == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear, nn.Sigmoid, nn.Unflatten]
    assert (model.encoder[1].in_features, model.encoder[1].out_features) == (784, 256)
    assert (model.decoder[0].in_features, model.decoder[0].out_features) == (256, 784)
    assert count_params(model) == 784 * 256 + 256 + 256 * 784 + 784 == 402_448
    out = model(torch.rand(5, 1, 28, 28))
    assert out.shape == (5, 1, 28, 28) and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 7, 10)])
def test_conv_coders_come_back_to_the_input_size(shape):
    ae = build_model(Autoencoder.Config(kind="conv", latent=12), shape, 1, seed=0)
    x = torch.rand(4, *shape)
    assert ae.encode(x).shape == (4, 12)
    assert ae(x).shape == (4, *shape)
    vae = build_model(VAE.Config(kind="conv", latent=5), shape, 1, seed=0)
    mean, log_var = vae.encode(x)
    assert mean.shape == log_var.shape == (4, 5)
    assert vae(x).shape == (4, *shape)
    assert vae.sample(torch.randn(3, 5)).shape == (3, *shape)


def test_vae_forward_decodes_the_mean_in_eval_mode_and_a_sample_in_training():
    vae = build_model(VAE.Config(), (1, 8, 8), 1, seed=0)
    x = torch.rand(6, 1, 8, 8)
    vae.eval()
    assert torch.equal(vae(x), vae(x))
    vae.train()
    assert not torch.equal(vae(x), vae(x))


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 16, 12)])
def test_gan_generates_images_of_the_data_shape_in_0_1(shape):
    gan = build_model(GAN.Config(latent=10, width=8), shape, 1, seed=0).eval()
    images = gan.sample(torch.randn(3, 10))
    assert images.shape == (3, *shape) and 0 <= images.min() and images.max() <= 1
    assert gan.discriminator(images * 2 - 1).shape == (3, 1)


def test_gan_refuses_sizes_that_do_not_divide_by_4():
    with pytest.raises(InputError, match=r"^model gan needs images shaped \(C, H, W\) with H and W divisible by 4, "
                                         r"got input shape \(1, 7, 7\)$"):
        build_model(GAN.Config(), (1, 7, 7), 1, seed=0)


def test_conv_autoencoder_needs_images():
    with pytest.raises(InputError, match=r"model autoencoder with kind conv needs images shaped \(C, H, W\)"):
        build_model(Autoencoder.Config(kind="conv"), (64,), 1, seed=0)
