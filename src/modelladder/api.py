"""The Python API: `from modelladder import Ladder, train`.

    board = Ladder.from_frame(df, label="churned").run()   # a leaderboard (a pandas DataFrame)
    board.best.predict(df_new)                              # the best rung, loaded (serve/predictor.py)

Every entry goes through the same code as the `ladder` command: `Ladder.from_frame` / `from_path` build the
ladder `ladder run PATH --label COLUMN` builds (verbs/auto.py), `Ladder.from_config` reads a ladder config as
`ladder run CONFIG` does, `run` is `run_ladder` (verbs/ladder.py) and `train` is `ladder train`; bad input is the
same InputError (modelladder.errors) that the command prints.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from rich.console import Console

from modelladder.config import (
    LadderConfig,
    apply_overrides,
    is_ladder,
    load_ladder_config,
    load_raw,
    resolve_paths,
    validate_ladder,
    validate_run,
)
from modelladder.errors import InputError
from modelladder.runs import check_name, claim, run_path
from modelladder.serve.predictor import Predictor
from modelladder.verbs.auto import auto_ladder, copy_table, plan_text
from modelladder.verbs.build import load_run_data
from modelladder.verbs.ladder import run_ladder
from modelladder.verbs.report import report_for
from modelladder.verbs.train import train_run


class Plan(str):
    """What a ladder will run, as `ladder run` prints it; shown as text in a notebook."""

    def __repr__(self) -> str:
        return str(self)


class RungPredictor(Predictor):
    """A Predictor that also takes a text run's texts as a DataFrame holding its text column (data.text, else
    'text'), the way a table run takes rows, so that `board.best.predict(df)` reads the same frame for every
    ladder."""

    def features(self, raw, names=None):
        if self.preprocess["kind"] == "text" and isinstance(raw, pd.DataFrame):
            column = self.cfg.data.text or "text"
            if column not in raw.columns:
                raise InputError(f"the input table has no text column '{column}'; its columns are "
                                 f"{list(raw.columns)}")
            names = names or [f"row {i} ('{column}')" for i in range(1, len(raw) + 1)]
            raw = [t if isinstance(t, str) else "" for t in raw[column]]  # missing: an empty text, refused
        return super().features(raw, names)


class Board(pd.DataFrame):
    """A ladder's leaderboard (leaderboard.csv's rows) with where it was written and its best rung.

    Anything derived from it (a selection, a sort) is a plain DataFrame."""

    _metadata: ClassVar[list[str]] = ["root", "report_path"]  # pandas: attributes, not columns

    def __init__(self, rows: list[dict], *, root: Path, report_path: Path):
        super().__init__(rows)
        self.root = Path(root)  # the ladder's folder, <runs_dir>/<name>
        self.report_path = Path(report_path)

    @property
    def _constructor(self):
        return pd.DataFrame

    @property
    def best_rung(self) -> str:
        """The rung with the best headline metric among the rungs that finished."""
        ok = self if "status" not in self.columns else self[self["status"] == "ok"]
        best = ok[ok["best"].fillna(False).astype(bool)] if "best" in ok.columns else ok.iloc[:0]
        if best.empty:
            raise InputError(f"ladder {self.root} has no best rung (no rung finished)")
        return str(best["rung"].iloc[0])

    @property
    def best(self) -> RungPredictor:
        """The best rung, loaded: `.predict(df)` (class names or values), `.predict_proba(df)`."""
        folder = self.root / self.best_rung
        if not (folder / "config.yaml").is_file():
            raise InputError(f"rung folder {folder} holds one model per fold (a k-fold ladder): load a fold's with "
                             "Predictor.load(folder / 'fold-0-0'), or train the rung alone with modelladder.train")
        return RungPredictor.load(folder)

    def _repr_html_(self) -> str:
        try:
            best = f" · best rung: <b>{html.escape(self.best_rung)}</b>"
        except InputError:
            best = ""
        head = (f"<p><b>{html.escape(self.root.name)}</b> leaderboard{best} · report: "
                f"<code>{html.escape(str(self.report_path))}</code></p>")
        return head + pd.DataFrame(self)._repr_html_()


class Ladder:
    """A ladder ready to run into `runs_dir`: `.plan` says what will run, `.run()` trains it."""

    def __init__(self, config: LadderConfig, *, runs_dir: str | Path = "runs", notes: list[str] = ()):
        self.config = config
        self.runs_dir = Path(runs_dir)
        self.notes = list(notes)  # what was detected about the data, and how to change it

    @classmethod
    def from_frame(cls, df: pd.DataFrame, label: str, *, task: str | None = None, name: str | None = None,
                   runs_dir: str | Path = "runs", text: str | None = None, time_limit: float | None = None,
                   overrides: list[str] = ()) -> Ladder:
        """The ladder for a pandas DataFrame, as for a table file: the frame is written to
        <runs_dir>/.data/<name>-<hash>.parquet, then read as `ladder run FILE --label label` reads a file."""
        if not isinstance(df, pd.DataFrame):
            raise InputError(f"df must be a pandas DataFrame, got {type(df).__name__}")
        if len(df) == 0:
            raise InputError("df has no rows")
        name = check_name(name or "frame", "name")
        path = copy_table(df, Path(runs_dir) / ".data", name, "parquet")
        return cls.from_path(path, label=label, task=task, name=name, runs_dir=runs_dir, text=text,
                             time_limit=time_limit, overrides=overrides)

    @classmethod
    def from_path(cls, path: str | Path, label: str | None = None, *, task: str | None = None,
                  name: str | None = None, runs_dir: str | Path = "runs", text: str | None = None,
                  time_limit: float | None = None, overrides: list[str] = ()) -> Ladder:
        """The ladder `ladder run PATH --label label` runs: PATH a table, an image folder or a text folder."""
        extra = {} if time_limit is None else {"time_limit_s": time_limit}
        config, notes = auto_ladder(path, label=label, task=task, text=text, overrides=overrides,
                                    runs_dir=runs_dir, name=name, extra=extra)
        return cls(config, runs_dir=runs_dir, notes=notes)

    @classmethod
    def from_config(cls, config: str | Path | dict[str, Any], *, overrides: list[str] = (),
                    runs_dir: str | Path = "runs") -> Ladder:
        """A ladder config: a YAML file (paths in it resolved from its folder) or a dict (paths resolved from the
        current folder), with `--set`-style overrides such as "train.epochs=3"."""
        if not isinstance(config, dict):
            return cls(load_ladder_config(config, overrides), runs_dir=runs_dir)
        raw = resolve_paths(apply_overrides(config, list(overrides)), Path.cwd())
        if not is_ladder(raw):
            raise InputError("a ladder config lists its rungs (rungs: [...]); for one run use modelladder.train")
        return cls(validate_ladder(raw), runs_dir=runs_dir)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def plan(self) -> Plan:
        return Plan(plan_text(self.config, self.runs_dir, self.notes))

    def __repr__(self) -> str:
        return f"Ladder({self.plan})"

    def run(self, *, overwrite: bool = False, console: Console | None = None, executor: str = "serial",
            address: str | None = None, workers: int | None = None) -> Board:
        """Train every rung into <runs_dir>/<name>/, write the leaderboard and report.html; the leaderboard.
        `executor="ray"` trains the rungs as Ray tasks (`--executor ray`, verbs/executor.py)."""
        from modelladder.verbs.executor import Executor

        runner = Executor(executor, address=address, workers=workers)
        console = console or Console(stderr=True)
        console.print(self.plan, markup=False, highlight=False, soft_wrap=True)
        rows = run_ladder(self.config, self.runs_dir, overwrite=overwrite, console=console, executor=runner)
        root = run_path(self.runs_dir, self.config.name)
        return Board(rows, root=root, report_path=report_for(root))


def train(config: str | Path | dict[str, Any], *, name: str | None = None, runs_dir: str | Path = "runs",
          overwrite: bool = False, overrides: list[str] = ()) -> dict:
    """`ladder train`: one run of a config (a YAML file or a dict) into <runs_dir>/<name>/ (name: the config's,
    else the file's stem, else "run"); its result: metrics, intervals, costs, and run_dir."""
    if isinstance(config, dict):
        raw = resolve_paths(apply_overrides(config, list(overrides)), Path.cwd())
        stem = None
    else:
        raw, stem = load_raw(config, overrides), Path(config).stem
    if is_ladder(raw):
        raise InputError("this config lists rungs: it is a ladder; run it with Ladder.from_config(config).run()")
    cfg = validate_run(raw)
    path = run_path(runs_dir, name or cfg.name or stem or "run")
    data, run_dir = claim(path, overwrite=overwrite, load=lambda: load_run_data(cfg))
    result = train_run(cfg, run_dir, data=data)
    report_for(run_dir)
    return result | {"run_dir": str(run_dir)}
