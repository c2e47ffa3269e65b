"""The shared task suite: every task registered in registry.TASKS must pass every test here.

Each task is built as a run builds it (verbs/build.py make_task: from a DataBundle, or from the prepared corpus
for the language-model tasks) with a model that declares it in `tasks`, on one of the shared model suite's tiny
problems (tests/tasks/cases.py), and is held to the contract of tasks/base.py: its loss trains, its scores and
metrics are what the loop, the Predictor and the reports read, its predictions (or their absence) are as
declared, and it refuses data it cannot use.

A task added to the registry fails here until it has a Case in tests/tasks/cases.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modelladder.errors import InputError
from modelladder.registry import MODELS, TASKS, load_object
from modelladder.tasks.base import Task
from modelladder.verbs.build import check_model_fits_data
from modelladder.verbs.pretrain import check_pretrain_config
from tests.tasks.cases import CASES, Case, build
from tests.threads import torch_threads

BETTER = {"min": -1, "max": 1}  # the sign of a better value's change


@pytest.fixture(params=sorted(TASKS))
def name(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny problems' steps take milliseconds: threads only add waits on a busy machine."""
    with torch_threads(1):
        yield


def case_for(name: str) -> Case:
    assert name in CASES, f"task {name} is registered but has no Case in tests/tasks/cases.py"
    return CASES[name]


@pytest.fixture
def built(name, tmp_path):
    return build(case_for(name), tmp_path)


def eval_loss(built) -> tuple[float, np.ndarray]:
    """(the batch's loss, its scores) in eval mode, where every task's noise is seeded: repeatable."""
    built.model.eval()
    with torch.no_grad():
        loss, outputs = built.task.loss(built.model, built.x, built.y)
    return loss.item(), built.task.scores(outputs).numpy()


def eval_metrics(built) -> dict[str, float]:
    """The task's metrics on the batch plus "loss", as the loop's evaluate() reports them."""
    loss, scores = eval_loss(built)
    metrics = built.task.metrics(built.y_np, scores)
    return {**metrics, "loss": metrics.get("loss", loss)}


def test_every_registered_task_has_a_case():
    # a new task must say here which model trains it, what its metrics are and what it refuses
    assert set(CASES) == set(TASKS)


def test_the_task_subclasses_the_contract_and_monitors_a_metric_it_reports(name, built, tmp_path):
    cls = load_object(TASKS[name])
    assert issubclass(cls, Task)
    metric, direction = cls.monitor
    assert direction in BETTER
    # the loop adds "loss" to every evaluation; any other monitored name must come from metrics()
    assert metric == "loss" or metric in built.task.metrics(built.y_np, eval_loss(built)[1])
    # fit() adds the task's callbacks to the run's: a list, even when the task has none
    assert isinstance(built.task.callbacks(built.model, tmp_path), list)


def test_the_run_builds_the_registered_class_for_a_model_that_declares_the_task(name, built):
    # the model declares the task (models/base.py: Rung.tasks), so the run layer's checks let the config through
    assert name in load_object(MODELS[built.cfg.model.name]).tasks
    if case_for(name).problem == "corpus":
        check_pretrain_config(built.cfg)  # `ladder pretrain` builds these tasks (make_task)
    else:
        check_model_fits_data(built.cfg, built.data)  # `ladder train` / `ladder evaluate` build them (make_task)
    assert type(built.task) is load_object(TASKS[name])


def test_loss_is_a_finite_scalar_with_a_gradient_and_scores_give_one_row_per_example(name, built):
    built.model.train()
    torch.manual_seed(0)  # training noise: dropout, masks, views, latent draws, captions
    loss, outputs = built.task.loss(built.model, built.x, built.y)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad
    loss.backward()
    grads = [p.grad for p in built.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    scores = built.task.scores(outputs)
    assert scores.shape[0] == len(built.y)  # one row per example (per window for the language models)
    assert torch.isfinite(scores).all()


def test_a_few_steps_on_one_batch_train_the_model(name, built):
    if built.task.train_step is not None:  # adversarial: no single loss falls, so check the task's own step
        check_own_step_updates_each_network(built)
        return
    case, task, model = case_for(name), built.task, built.model
    before = eval_metrics(built)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=case.lr)
    model.train()
    torch.manual_seed(0)
    for _ in range(case.steps):
        loss = task.loss(model, built.x, built.y)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = eval_metrics(built)
    assert after["loss"] < case.fall * before["loss"], (before["loss"], after["loss"])
    metric, direction = task.monitor  # early stopping and the best checkpoint read it: it must move the right way
    assert (after[metric] - before[metric]) * BETTER[direction] > 0, (metric, before[metric], after[metric])


def check_own_step_updates_each_network(built) -> None:
    """One train_step through an update callback as the loop's: two updates, each on its own network."""
    task, model = built.task, built.model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    updated: list[set[int]] = []

    def update(loss, params):
        assert loss.dim() == 0 and torch.isfinite(loss)
        updated.append({id(p) for p in params})
        loss.backward(inputs=params)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    torch.manual_seed(0)
    logged = task.train_step(model, built.x, built.y, update)
    # the loop logs what train_step returns: a finite, detached scalar
    assert logged.dim() == 0 and torch.isfinite(logged) and not logged.requires_grad
    # two updates on disjoint parameter sets that together are all of the model's weights
    assert len(updated) == 2 and not updated[0] & updated[1]
    assert updated[0] | updated[1] == {id(p) for p in model.parameters()}
    weights = {k: v for k, v in model.state_dict().items() if k.endswith("weight")}
    moved = {k.split(".")[0] for k, v in weights.items() if not torch.equal(v, start[k])}
    assert moved == {"generator", "discriminator"}  # the networks' own names (models/gan.py)


def test_metrics_are_finite_floats_with_the_documented_keys(name, built):
    loss, scores = eval_loss(built)
    metrics = built.task.metrics(built.y_np, scores)
    assert set(metrics) == case_for(name).metrics
    assert all(type(v) is float and math.isfinite(v) for v in metrics.values()), metrics
    # one reported metric is the batch's mean loss: val_loss and the monitor measure the objective trained on
    case = case_for(name)
    assert metrics[case.loss_metric] == pytest.approx(loss * case.loss_scale(built.task), rel=1e-4)


def test_decode_gives_one_prediction_per_example_or_refuses(name, built):
    task, decodes = built.task, case_for(name).decodes
    assert task.predicts == (decodes is not None)  # a task that starts predicting must say here what it predicts
    _, scores = eval_loss(built)
    if not task.predicts:  # `ladder predict` and serve never ask it: asking anyway is an error, not a guess
        with pytest.raises(NotImplementedError):
            task.decode(scores)
        return
    if decodes == "strings":  # decoded outputs are the predictions: decode passes them through
        outputs = np.asarray(["A B", "C"], dtype=object)
        assert list(task.decode(outputs)) == ["A B", "C"]
        return
    predictions = task.decode(scores)
    assert predictions.shape == (len(built.x),)
    if decodes == "class":  # class indices, the most probable one
        assert np.issubdtype(predictions.dtype, np.integer)
        assert set(np.unique(predictions)) <= set(range(len(built.data.classes)))
        assert np.array_equal(predictions, scores.argmax(axis=1))
    else:  # a value: the model's real-valued output itself
        assert np.issubdtype(predictions.dtype, np.floating)
        assert np.array_equal(predictions, scores)


def test_data_the_task_cannot_use_is_refused_naming_the_field(name):
    cls, refusal = load_object(TASKS[name]), case_for(name).refusal
    own_problems = cls.problems.__func__ is not Task.problems.__func__
    if refusal is None:  # a task that grows its own problems() must get a refusal case here
        assert not own_problems
        return
    assert own_problems == (refusal.stage == "problems")
    cfg, data = refusal.make()
    if refusal.stage == "from_config":
        with pytest.raises(InputError) as err:
            cls.from_config(cfg, data)
        assert any(refusal.field in p for p in err.value.problems), (refusal.what, err.value.problems)
        return
    found = cls.problems(cfg, data)
    assert all(isinstance(p, str) for p in found)
    assert any(refusal.field in p for p in found), (refusal.what, found)
    # the run refuses it before anything is trained, with an InputError that names the field too
    with pytest.raises(InputError) as err:
        check_model_fits_data(cfg, data)
    assert any(refusal.field in p for p in err.value.problems), (refusal.what, err.value.problems)
