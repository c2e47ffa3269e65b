from __future__ import annotations

import pytest
import torch

from tests.explain.runs import TINY_TRANSFORMER, digits_run, table_run, text_run


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Explanations predict many small batches: one thread each, so OpenMP (scikit-learn's trees, torch)
    spends no time waking workers on a machine whose cores are shared."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("explain-runs")


@pytest.fixture(scope="session")
def digits_cnn(runs):
    return digits_run(runs, {"name": "cnn", "channels": [8], "hidden": 0}, "digits-cnn")


@pytest.fixture(scope="session")
def digits_mlp(runs):
    return digits_run(runs, {"name": "mlp", "hidden": [32]}, "digits-mlp")


@pytest.fixture(scope="session")
def key_hist_gb(runs):
    return table_run(runs, {"name": "hist_gb"}, "key-hist-gb")


@pytest.fixture(scope="session")
def key_logreg(runs):
    return table_run(runs, {"name": "logreg"}, "key-logreg")


@pytest.fixture(scope="session")
def key_mlp(runs):
    return table_run(runs, {"name": "mlp", "hidden": [16]}, "key-mlp")


@pytest.fixture(scope="session")
def sentiment_transformer(runs):
    return text_run(runs, TINY_TRANSFORMER, "sentiment-transformer")


@pytest.fixture(scope="session")
def sentiment_tfidf(runs):
    return text_run(runs, {"name": "tfidf_logreg", "min_df": 1}, "sentiment-tfidf")
