"""The shared suite: every model registered in registry.MODELS must pass every test here.

Each test builds the model from its default Config through build_model and runs it on a small
synthetic problem it can learn: three classes, each a fixed random 8x8 pattern plus noise.

Inputs: a model class declares `input_kind` (models/base.py); PROBLEMS maps each kind to a generator
returning (X, y, input_shape, n_outputs). The contract's default, "features", gets float arrays shaped
(N, 1, 8, 8), which every model that flattens or convolves its input accepts. A model that needs other
inputs sets, say, `input_kind = "tokens"` on its class and adds a "tokens" generator here; the suite then
covers it with no other change.

Generative models (whose first task, models/base.py `tasks`, is a generative objective: GENERATIVE) are
scored through that task on "pixels". Language models (`tasks == ("causal_lm",)`, trained by `ladder
pretrain` only) are built as `ladder pretrain` builds them (verbs/pretrain.py build_language_model) on a tiny random Llama saved locally (tiny_llm.py: their Config's `path`
names it; the hub is never asked) and scored by next-token loss on a small repeated text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file

from modelladder.config import RunConfig, TaskConfig, to_yaml, validate_run
from modelladder.errors import InputError
from modelladder.models.build import build_model, count_nodes, count_params, is_neural
from modelladder.registry import MODELS, TASKS, load_object
from modelladder.train.checkpoint import load_weights, save_weights
from tests.models.problems import seq2seq_problem, text_problem
from tests.models.tiny_llm import save_tiny_llama


def float_problem(n: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(3, 1, 8, 8))
    y = np.arange(n) % 3
    X = patterns[y] + 0.8 * rng.normal(size=(n, 1, 8, 8))
    return X.astype(np.float32), y.astype(np.int64), (1, 8, 8), 3


def pixel_problem(n: int = 96, seed: int = 0):
    """The float problem squashed into [0, 1]: images for the generative models, which output pixels."""
    X, y, input_shape, n_outputs = float_problem(n, seed)
    return (1 / (1 + np.exp(-X))).astype(np.float32), y, input_shape, n_outputs


PROBLEMS = {"features": float_problem, "text": text_problem, "pixels": pixel_problem}
# "captioned" (CLIP): the float problem's images, scored against one caption per class (CAPTIONS); the model's
# (N, 3) image-to-caption logits are its class scores
PROBLEMS["captioned"] = float_problem
CAPTIONS = ["a picture of the first pattern", "a picture of the second pattern", "a picture of the third pattern"]


def caption_tokens(model) -> tuple[torch.Tensor, torch.Tensor]:
    """CAPTIONS as (ids, mask) from the model's own tokenizer (trained on them twice: every word is frequent)."""
    from modelladder.data.batches import TokenSequences
    encoder = type(model).make_encoder(type(model).Config(), CAPTIONS * 2)
    return TokenSequences(encoder.encode(CAPTIONS), encoder.pad_id).take(torch.arange(len(CAPTIONS)))


def tensors(model, X):
    """A network's input: the float array as a tensor, or texts as (ids, mask) from the model's own tokenizer."""
    if model.input_kind == "captioned":
        return (torch.from_numpy(X), *caption_tokens(model))
    if model.input_kind != "text":
        return torch.from_numpy(X)
    from modelladder.data.batches import TokenSequences
    encoder = type(model).make_encoder(type(model).Config(), X)
    return TokenSequences(encoder.encode(X), encoder.pad_id).take(torch.arange(len(X)))


@pytest.fixture(params=sorted(MODELS))
def name(request) -> str:
    return request.param


def model_class(name: str):
    return load_object(MODELS[name])


def problem_for(name: str):
    if is_seq2seq(name):  # strings to strings, whatever the model reads
        return seq2seq_problem()
    kind = model_class(name).input_kind
    assert kind in PROBLEMS, f"model {name} has input_kind {kind!r}: add a generator for it to PROBLEMS"
    return PROBLEMS[kind]()


def build(name: str, seed: int = 0):
    X, y, input_shape, n_outputs = problem_for(name)
    return build_model(model_class(name).Config(), input_shape, n_outputs, seed=seed), X, y


def eval_loss(model, X, y) -> float:
    model.eval()
    with torch.no_grad():
        return F.cross_entropy(model(tensors(model, X)), torch.from_numpy(y)).item()


def outputs(model, X) -> np.ndarray:
    if not is_neural(model):
        return model.predict_proba(X)
    model.eval()
    with torch.no_grad():
        return model(tensors(model, X)).numpy()


# ---------------------------------------------------------------- sequence to sequence
# A seq2seq model (tasks == ("seq2seq",)) maps source strings to target strings: a network is scored by its
# teacher-forced token loss and logits (B, T, V) through task seq2seq; a classic rung by its predictions.


def is_seq2seq(name: str) -> bool:
    return model_class(name).tasks == ("seq2seq",)


def seq2seq_batch(model, X, y):
    """(task, x, targets): the seq2seq task over the problem's target vocabulary, the sources as (ids, mask) from
    the model's own tokenizer, and the targets as padded symbol ids."""
    from modelladder.data.seq2seq import encode_targets, target_vocabulary
    from modelladder.tasks.seq2seq import Seq2Seq

    vocab = target_vocabulary(y)
    return Seq2Seq(vocab), tensors(model, X), torch.from_numpy(encode_targets(y, vocab))


def seq2seq_loss(model, X, y) -> float:
    task, x, t = seq2seq_batch(model, X, y)
    model.eval()
    with torch.no_grad():
        return task.loss(model, x, t)[0].item()


def seq2seq_logits(model, X, y) -> torch.Tensor:
    _, x, t = seq2seq_batch(model, X, y)
    model.eval()
    with torch.no_grad():
        return model(x, t)


def seq2seq_fit(model, X, y):
    """A classic seq2seq rung fitted on the first reference of each row."""
    return model.fit(list(X), [refs[0] for refs in y])


# ---------------------------------------------------------------- generative models
# A generative model (autoencoder, VAE, GAN) names the objectives it trains with in `tasks` and has no class
# outputs: the suite scores it through its first task instead, on "pixels" (images in [0, 1]).


GENERATIVE = ("reconstruction", "vae", "gan")  # objectives without class outputs


def is_generative(name: str) -> bool:
    return model_class(name).tasks[0] in GENERATIVE


def objective(name: str):
    return load_object(TASKS[model_class(name).tasks[0]])()


def task_outputs(model, task, X, y) -> torch.Tensor:
    """The task's per-example numbers in eval mode, where its noise is seeded: repeatable."""
    model.eval()
    with torch.no_grad():
        return task.loss(model, torch.from_numpy(X), torch.from_numpy(y))[1]


def quality(model, task, X, y) -> float:
    """Lower is better: a GAN's samples' Fréchet distance to the data on raw pixels (it reconstructs
    nothing), else the task's mean squared reconstruction error."""
    if task.train_step is None:
        return task.metrics(y, task_outputs(model, task, X, y).numpy())["mse"]
    from modelladder.evaluate.generative import frechet_distance, generate, sample_noise

    samples = generate(model, sample_noise(len(X), model.latent, seed=1)).numpy()
    return frechet_distance(samples.reshape(len(X), -1).astype(np.float64), X.reshape(len(X), -1).astype(np.float64))


def train_generative(model, task, X, y, steps: int, **adam) -> None:
    """`steps` steps of the task's objective, through its own step where it has one (as the loop does)."""
    optimizer = torch.optim.Adam(model.parameters(), **adam)

    def update(loss, params):
        loss.backward(inputs=params)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    x, t = torch.from_numpy(X), torch.from_numpy(y)
    model.train()
    torch.manual_seed(0)
    for _ in range(steps):
        if task.train_step is not None:
            task.train_step(model, x, t, update)
        else:
            update(task.loss(model, x, t)[0], list(model.parameters()))


# ---------------------------------------------------------------- language models
# A language model gives next-token logits (batch, length, vocab) and trains on token windows: x, and y the
# same windows one token later, cut from LM_TEXT with the model's own tokenizer.

LM_TEXT = "the team and the score of the match is a goal in the election of the party and the law " * 6
LM_WINDOW = 16


def is_language_model(name: str) -> bool:
    return model_class(name).tasks == ("causal_lm",)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture
def one_thread():
    """The tiny Llama's steps take milliseconds: threads only add waits, seconds long on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def lm_config(request, name: str, seed: int) -> RunConfig:
    """A causal_lm run's config for `name` with its defaults but model.path: the tiny Llama, offline."""
    request.getfixturevalue("monkeypatch").setenv("HF_HUB_OFFLINE", "1")
    request.getfixturevalue("one_thread")
    model = model_class(name).Config(path=str(request.getfixturevalue("tiny_llama")))
    return RunConfig(seed=seed, model=model, task=TaskConfig(name="causal_lm"))


def build_lm(request, name: str, seed: int = 0):
    """(model, x, y): the model as `ladder pretrain` builds it, and LM_TEXT's windows in its tokens."""
    from modelladder.models.hf_causal import hf_encoder
    from modelladder.verbs.pretrain import build_language_model

    cfg = lm_config(request, name, seed)
    ids = torch.from_numpy(hf_encoder(cfg.model.path, cfg.model.max_length).encode_corpus(LM_TEXT).astype(np.int64))
    windows = ids.unfold(0, LM_WINDOW + 1, LM_WINDOW // 2)
    return build_language_model(cfg), windows[:, :-1], windows[:, 1:]


def lm_logits(model, x) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


def lm_loss(model, x, y) -> float:
    return F.cross_entropy(lm_logits(model, x).flatten(0, 1), y.flatten()).item()


def train_lm(model, x, y, steps: int) -> None:
    """`steps` Adam steps of next-token loss on the weights that train (the adapters, for LoRA)."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    model.train()
    torch.manual_seed(0)  # dropout
    for _ in range(steps):
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_builds_and_gives_one_row_per_example(name, request):
    if is_language_model(name):  # one row of next-token logits per position of each window
        model, x, _ = build_lm(request, name)
        vocab = model.lm.get_output_embeddings().out_features
        assert model.family == "neural"
        assert lm_logits(model, x).shape == (*x.shape, vocab) and len(x) > 1
        assert 0 < sum(p.numel() for p in model.parameters() if p.requires_grad) < count_params(model)
        return
    model, X, y = build(name)
    assert model.family in ("neural", "classic")
    if is_seq2seq(name):  # one row of target logits per target token, or one output string per source
        if not is_neural(model):
            assert len(seq2seq_fit(model, X, y).predict(list(X))) == len(X)
            return
        _, _, t = seq2seq_batch(model, X, y)
        assert seq2seq_logits(model, X, y).shape == (*t.shape, problem_for(name)[3])
        assert count_params(model) > 0
        return
    if is_generative(name):  # no class outputs: its task gives one row per example
        assert task_outputs(model, objective(name), X, y).shape[0] == len(X)
        assert count_params(model) > 0
        return
    if not is_neural(model):
        model.fit(X, y)
        assert np.allclose(model.predict_proba(X).sum(axis=1), 1)
    assert outputs(model, X).shape == (len(X), 3)
    assert (count_params(model) or count_nodes(model)) > 0  # trees count nodes, not params


def test_training_learns_the_problem(name, request):
    if is_language_model(name):  # the repeated text becomes predictable
        model, x, y = build_lm(request, name)
        before = lm_loss(model, x, y)
        train_lm(model, x, y, 30)
        assert lm_loss(model, x, y) < 0.5 * before
        return
    model, X, y = build(name)
    if is_seq2seq(name):
        request.getfixturevalue("one_thread")  # small steps: threads only add waits
        learn_seq2seq(model, X, y)
        return
    if not is_neural(model):
        accuracy = (model.fit(X, y).predict(X) == y).mean()
        assert accuracy >= 0.9  # chance is 1/3
        return
    if is_generative(name):
        task = objective(name)
        before = quality(model, task, X, y)
        if task.train_step is not None:  # adversarial: DCGAN's Adam settings, and more steps to move measurably
            train_generative(model, task, X, y, 120, lr=1e-3, betas=(0.5, 0.999))
            assert quality(model, task, X, y) < 0.6 * before
        else:
            train_generative(model, task, X, y, 60, lr=3e-3)
            assert quality(model, task, X, y) < 0.5 * before
        return
    before = eval_loss(model, X, y)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        model.train()
        loss = F.cross_entropy(model(tensors(model, X)), torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert eval_loss(model, X, y) < 0.5 * before


def learn_seq2seq(model, X, y) -> None:
    if not is_neural(model):  # the mapping is one letter to one symbol: nearly every word comes out right
        predicted = seq2seq_fit(model, X, y).predict(list(X))
        assert np.mean([p == refs[0] for p, refs in zip(predicted, y)]) >= 0.9
        return
    before = seq2seq_loss(model, X, y)
    task, x, t = seq2seq_batch(model, X, y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # more and a Transformer without warmup stalls
    torch.manual_seed(0)  # dropout
    for _ in range(30):
        model.train()
        loss = task.loss(model, x, t)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert seq2seq_loss(model, X, y) < 0.5 * before


def test_save_then_load_gives_identical_outputs(name, tmp_path, request):
    if is_language_model(name):  # through the run's own weights file: the trained weights only
        model, x, y = build_lm(request, name, seed=1)
        train_lm(model, x, y, 3)  # LoRA's B starts at zero: move every adapter away from its initial value
        save_weights(tmp_path / "model.safetensors", model)
        saved = load_file(tmp_path / "model.safetensors")
        assert set(saved) == model.trained
        if model.mode == "lora":
            assert all(".lora_A." in k or ".lora_B." in k for k in saved)
        loaded, _, _ = build_lm(request, name, seed=2)
        assert not torch.equal(lm_logits(loaded, x), lm_logits(model, x))
        load_weights(tmp_path / "model.safetensors", loaded)
        assert torch.equal(lm_logits(loaded, x), lm_logits(model, x))
        return
    model, X, y = build(name, seed=1)
    cfg, (_, _, input_shape, n_outputs) = model_class(name).Config(), problem_for(name)
    if is_seq2seq(name):
        if is_neural(model):
            save_file(model.state_dict(), tmp_path / "model.safetensors")
            loaded = build_model(cfg, input_shape, n_outputs, seed=2)
            loaded.load_state_dict(load_file(tmp_path / "model.safetensors"))
            assert torch.equal(seq2seq_logits(loaded, X, y), seq2seq_logits(model, X, y))
        else:
            seq2seq_fit(model, X, y).save(tmp_path / "model.skops")
            loaded = type(model).load(tmp_path / "model.skops", cfg, input_shape, n_outputs, task="seq2seq")
            assert list(loaded.predict(list(X))) == list(model.predict(list(X)))
        return
    if is_generative(name):
        task = objective(name)
        model.train()
        task.loss(model, torch.from_numpy(X), torch.from_numpy(y))  # move batchnorm statistics
        save_file(model.state_dict(), tmp_path / "model.safetensors")
        loaded = build_model(cfg, input_shape, n_outputs, seed=2)
        loaded.load_state_dict(load_file(tmp_path / "model.safetensors"))
        assert torch.equal(task_outputs(loaded, task, X, y), task_outputs(model, task, X, y))
        return
    if is_neural(model):
        model.train()
        model(tensors(model, X))  # move batchnorm statistics away from their initial values
        save_file(model.state_dict(), tmp_path / "model.safetensors")
        loaded = build_model(cfg, input_shape, n_outputs, seed=2)
        loaded.load_state_dict(load_file(tmp_path / "model.safetensors"))
        assert torch.equal(torch.from_numpy(outputs(loaded, X)), torch.from_numpy(outputs(model, X)))
    else:
        model.fit(X, y).save(tmp_path / "model.skops")
        loaded = type(model).load(tmp_path / "model.skops", cfg, input_shape, n_outputs)
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert np.array_equal(loaded.predict(X), model.predict(X))
        assert loaded.n_params() == model.n_params() and loaded.n_nodes() == model.n_nodes()


def test_config_round_trips(name):
    cfg = model_class(name).Config()
    assert type(cfg).model_validate(cfg.model_dump()) == cfg
    run = RunConfig(model=cfg)
    assert validate_run(yaml.safe_load(to_yaml(run))).model == cfg


def test_bad_values_name_the_field(name):
    fields = [f for f in model_class(name).Config.model_fields if f != "name"]
    raw = {"name": name, "no_such_key": 1, **{f: {"not": "valid"} for f in fields}}
    with pytest.raises(InputError) as err:
        validate_run({"model": raw})
    problems = err.value.problems
    assert "unknown key model.no_such_key" in problems
    for field in fields:
        assert any(p.startswith((f"model.{field} ", f"unknown key model.{field}.")) for p in problems), (field, problems)


def test_seed_decides_the_initial_weights(name, request):
    made = build_lm if is_language_model(name) else lambda _, name, seed: build(name, seed)  # LM: the adapters
    first, X, y = made(request, name, seed=0)
    again, _, _ = made(request, name, seed=0)
    other, _, _ = made(request, name, seed=1)
    if not is_neural(first) and is_seq2seq(name):
        assert list(seq2seq_fit(first, X, y).predict(list(X))) == list(seq2seq_fit(again, X, y).predict(list(X)))
        return
    if not is_neural(first):  # classic rungs start empty: the seed shows in what they fit
        assert np.array_equal(first.fit(X, y).predict_proba(X), again.fit(X, y).predict_proba(X))
        return
    a, b, c = first.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_building_leaves_the_global_random_state_alone(name, request):
    state = torch.random.get_rng_state()
    build_lm(request, name, seed=123) if is_language_model(name) else build(name, seed=123)
    assert torch.equal(torch.random.get_rng_state(), state)
