"""ModelLadder: from scikit-learn baselines to deep and pretrained models under one protocol.

The Python API (api.py), imported on first use so that `import modelladder` stays cheap:
`from modelladder import Ladder, Board, train`.
"""

import importlib
import sys
import types

__version__ = "0.1.0"
__all__ = ["Board", "Ladder", "__version__", "train"]


def _api():
    return importlib.import_module("modelladder.api")  # by name: the package's top layer, loaded lazily


def __getattr__(name: str):
    if name in ("Ladder", "Board"):
        return getattr(_api(), name)
    raise AttributeError(f"module 'modelladder' has no attribute {name!r}")


class _Package(types.ModuleType):
    """`modelladder.train` is the API's function although the training loop's subpackage has the same name: the
    import system binds a subpackage to its parent's attribute, and that binding is ignored here (the subpackage
    stays importable: `from modelladder.train import loop`)."""

    @property
    def train(self):
        return _api().train

    @train.setter
    def train(self, subpackage):
        pass


sys.modules[__name__].__class__ = _Package
