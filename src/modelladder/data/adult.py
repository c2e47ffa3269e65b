"""UCI Adult (census income, 1994) from the canonical files in <data root>/adult/, downloaded there when missing.

The official split is kept: adult.data's 32,561 rows train (of which data.split.val go to
validation) and adult.test's 16,281 rows test. The files have no header, fields separated by a
comma and a space, '?' for a missing value; adult.test starts with a comment line and its labels
end with a period ('>50K.'), stripped here so that both files share the classes '<=50K' and '>50K'.
The table then goes through the same preprocessing as any CSV (data/tabular.py): median / most
frequent imputation, standardisation and one-hot encoding, fitted on the training rows only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from modelladder.data.download import data_root, ensure_files
from modelladder.data.tabular import TableBundle, TableFile, table_bundle
from modelladder.errors import InputError

if TYPE_CHECKING:
    from modelladder.config import DataConfig

URLS = ["https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"]

FILES = {
    "adult.data": "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "adult.test": "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
}

COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
           "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
           "income"]
LABEL = "income"


def load_adult(cfg: DataConfig, *, seed: int, task: str) -> TableBundle:
    """The Adult table with label 'income' (data.label may only name it); data.drop / data.sensitive
    pick columns as for any table, e.g. drop: [sex, race] with sensitive: [sex, race]."""
    if cfg.label not in (None, LABEL):
        raise InputError(f"data.label for dataset 'adult' must be '{LABEL}' (or unset), got '{cfg.label}'")
    if task != "classification":
        raise InputError(f"dataset 'adult' supports task.name 'classification', got '{task}'")
    sources = {name: (URLS[0] + name, sha256) for name, sha256 in FILES.items()}
    folder = ensure_files(data_root(cfg.root) / "adult", sources, "Adult")
    train = read_adult(folder / "adult.data", skip=0)
    test = read_adult(folder / "adult.test", skip=1)  # its first line is a comment: |1x3 Cross validator
    frame = pd.concat([train, test], ignore_index=True)
    frame[LABEL] = frame[LABEL].str.removesuffix(".")
    test_rows = np.arange(len(train), len(frame))
    source = TableFile(folder, "row", 1)
    return table_bundle(frame, source, cfg.model_copy(update={"label": LABEL}), seed=seed, task=task,
                         test=test_rows)


def read_adult(path: Path, *, skip: int) -> pd.DataFrame:
    """One Adult file as a table; its checksum is checked first, so that any parse error means a bug."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != FILES[path.name]:
        raise InputError(f"Adult file {path} is not the canonical UCI file (sha256 {digest}, expected "
                         f"{FILES[path.name]}); delete it to download it again")
    return pd.read_csv(path, names=COLUMNS, sep=",", skipinitialspace=True, na_values="?", skiprows=skip,
                       skip_blank_lines=True)

