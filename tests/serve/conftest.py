from __future__ import annotations

import pytest

from tests.serve.runs import image_run, tabular_run, text_run


@pytest.fixture(scope="session")
def people_dir(tmp_path_factory):
    return tabular_run(tmp_path_factory.mktemp("serve-tabular"))


@pytest.fixture(scope="session")
def topics_dir(tmp_path_factory):
    return text_run(tmp_path_factory.mktemp("serve-text"))


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    return image_run(tmp_path_factory.mktemp("serve-image"))
