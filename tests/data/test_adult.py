"""UCI Adult through the table path: the official split, '?' as missing, test labels without their period,
sensitive columns kept per split (also when dropped from the features), checksums and the download."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from modelladder.config import DataConfig
from modelladder.data.adult import FILES, URLS, load_adult
from modelladder.errors import InputError
from tests.conftest import require_data


@pytest.fixture(scope="module")
def bundle():
    root = require_data("adult").parent  # module scope: the per-test $MODELLADDER_DATA is not set yet
    return load_adult(DataConfig(dataset="adult", root=root, sensitive=["sex", "race"], drop=["sex"],
                                 split={"val": 0.1}), seed=0, task="classification")


def test_the_official_split_and_labels(bundle):
    assert len(bundle.y_train) + len(bundle.y_val) == 32_561 and len(bundle.y_test) == 16_281
    assert len(bundle.y_val) == 3_257
    assert bundle.classes == ["<=50K", ">50K"]  # the test file's '>50K.' is the same class
    assert int(bundle.y_test.sum()) == 3_846
    assert int(bundle.y_train.sum() + bundle.y_val.sum()) == 7_841


def test_missing_values_are_imputed_and_dropped_columns_are_not_features(bundle):
    assert not np.isnan(bundle.X_train).any() and not np.isnan(bundle.X_test).any()
    assert "workclass=?" not in bundle.feature_names  # '?' is missing, not a category
    assert "age" in bundle.feature_names and "race=White" in bundle.feature_names
    assert not any(name.startswith("sex") for name in bundle.feature_names)
    assert bundle.preprocess["dropped"] == ["sex"]


def test_sensitive_columns_are_kept_per_split(bundle):
    test = bundle.sensitive["test"]
    assert list(test.columns) == ["sex", "race"] and len(test) == 16_281
    assert test["sex"].value_counts().to_dict() == {"Male": 10_860, "Female": 5_421}
    assert len(bundle.sensitive["train"]) == len(bundle.y_train)


def test_only_the_income_label_and_classification_are_accepted():
    with pytest.raises(InputError, match="data.label for dataset 'adult' must be 'income' \\(or unset\\), got 'sex'"):
        load_adult(DataConfig(dataset="adult", label="sex"), seed=0, task="classification")
    with pytest.raises(InputError, match="dataset 'adult' supports task.name 'classification', got 'regression'"):
        load_adult(DataConfig(dataset="adult"), seed=0, task="regression")


def test_unknown_drop_and_sensitive_columns_are_named():
    require_data("adult")
    with pytest.raises(InputError) as err:
        load_adult(DataConfig(dataset="adult", drop=["gender"], sensitive=["races"]), seed=0, task="classification")
    assert err.value.problems[0].startswith("data.drop 'gender' is not a column of ")
    assert err.value.problems[1].endswith("(did you mean 'race'?)")


def test_a_changed_file_is_refused(tmp_path):
    folder = require_data("adult")
    copy = tmp_path / "adult"
    shutil.copytree(folder, copy)
    with open(copy / "adult.test", "a") as f:
        f.write("39, Private, 1, Bachelors, 13, Never-married, Sales, Own-child, White, Male, 0, 0, 40, Cuba, >50K.\n")
    with pytest.raises(InputError, match=r"adult.test is not the canonical UCI file \(sha256 "):
        load_adult(DataConfig(dataset="adult", root=tmp_path), seed=0, task="classification")


def test_missing_files_are_downloaded_from_the_canonical_urls(tmp_path, monkeypatch):
    folder = require_data("adult")
    calls = []

    def fake_download(urls, dest, sha256):
        calls.append((urls, dest.name, sha256))
        shutil.copy(folder / dest.name, dest)
        return dest

    monkeypatch.setattr("modelladder.data.download.download", fake_download)  # what ensure_files calls
    data = load_adult(DataConfig(dataset="adult", root=tmp_path), seed=0, task="classification")
    assert calls == [([URLS[0] + name], name, FILES[name]) for name in FILES]
    assert URLS[0] == "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
    assert len(data.y_test) == 16_281
