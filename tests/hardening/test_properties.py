"""Property-based: any config, CSV file or text file gives a result or an InputError (a clean message,
exit status 2), never a traceback from deeper down."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelladder.config import DataConfig, load_ladder_config, load_run_config
from modelladder.data.load import load_data
from modelladder.errors import InputError

SCALARS = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=12)
KEYS = st.sampled_from(["name", "seed", "data", "model", "train", "task", "eval", "dataset", "limit", "epochs",
                        "batch_size", "optimizer", "lr", "hidden", "split", "val", "rungs", "path", "x"])
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=20)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def result_or_input_error(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except InputError as err:
        assert err.problems and all(isinstance(p, str) and p for p in err.problems)
        return err


@FAST
@given(text=st.text(max_size=300) | st.builds(lambda d: __import__("yaml").safe_dump(d), st.dictionaries(KEYS, VALUES)),
       overrides=st.lists(st.text(max_size=30), max_size=3))
def test_any_config_text_and_overrides_give_a_config_or_an_input_error(text, overrides):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass") if "\ud800" not in text else None
        if not path.exists():
            return
        result_or_input_error(load_run_config, path, overrides)
        result_or_input_error(load_ladder_config, path, overrides)


CELL = st.one_of(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
                 st.integers(-5, 5).map(str), st.floats(allow_nan=True).map(str), st.just(""))


@settings(max_examples=80, deadline=None)
@given(header=st.lists(CELL, min_size=1, max_size=4), rows=st.lists(st.lists(CELL, max_size=5), max_size=30),
       label=st.none() | st.sampled_from(["label", "a", ""]), raw=st.binary(max_size=40))
def test_any_csv_file_gives_data_or_an_input_error(header, rows, label, raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "d.csv"
        lines = [",".join(header)] + [",".join(r) for r in rows]
        path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + raw)
        result_or_input_error(load_data, DataConfig(dataset="csv", path=path, label=label or None), seed=0)


@settings(max_examples=80, deadline=None)
@given(suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]),
       lines=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30), max_size=20),
       raw=st.binary(max_size=30))
def test_any_text_file_gives_data_or_an_input_error(suffix, lines, raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"t{suffix}"
        path.write_bytes("\n".join(lines).encode() + raw)
        result_or_input_error(load_data, DataConfig(dataset="text", path=path), seed=0)
