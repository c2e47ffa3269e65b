"""Config validates model lazily: importing it loads no model module, a config loads only the model it names."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from modelladder import config
from modelladder.config import validate_run
from modelladder.errors import InputError


def modules_after(code: str) -> set[str]:
    """sys.modules after running `code` in a fresh interpreter (this one has imported the models already)."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_importing_config_loads_no_model_module_and_no_torch():
    loaded = modules_after("import modelladder.config")
    assert not [m for m in loaded if m.startswith("modelladder.models")]
    assert not loaded & {"torch", "sklearn", "tokenizers", "transformers"}


def test_a_config_imports_only_the_model_it_names():
    loaded = modules_after("from modelladder.config import validate_run\n"
                           "assert validate_run({'model': {'name': 'mlp', 'hidden': [4]}}).model.hidden == [4]")
    assert "modelladder.models.mlp" in loaded
    assert not loaded & {"modelladder.models.hf", "modelladder.models.classic", "modelladder.models.transformer",
                         "sklearn", "tokenizers", "transformers"}


@pytest.fixture
def broken_model(monkeypatch):
    """A registry with a model whose module does not import (a bug or a broken install, not a bad config)."""
    monkeypatch.setattr(config, "MODELS", {**config.MODELS, "broken": "modelladder.models.no_such_module:Broken"})


def test_a_model_that_fails_to_import_breaks_only_configs_that_name_it(broken_model):
    assert validate_run({"model": {"name": "mlp"}}).model.name == "mlp"
    with pytest.raises(InputError, match=r"unknown key model.hiden \(did you mean 'hidden'\?\)"):
        validate_run({"model": {"name": "mlp", "hiden": [3]}})
    # not an InputError: the config is right, the install or the code is not; the traceback says where
    with pytest.raises(ImportError, match=r"model.name 'broken': modelladder.models.no_such_module:Broken failed "
                                          r"to import: No module named 'modelladder.models.no_such_module'"):
        validate_run({"model": {"name": "broken"}})
