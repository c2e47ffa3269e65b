"""explain_run: attributions for inputs of a trained run, each checked for faithfulness and compared across
methods, saved as <run>/explain.json and <run>/pictures/explain-*.png, and shown in the run's report.

Tables and scikit-learn image rungs need the training features (the SHAP background, the mean row that a
removed column takes): the run folder does not keep them, so they are loaded again through the run's
config (verbs/build.py load_run_data), which needs the run's data where the config says it is.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from functools import cached_property, partial
from pathlib import Path

import numpy as np

from modelladder.errors import InputError, did_you_mean
from modelladder.explain import neural, pictures
from modelladder.explain.faithfulness import ArrayInput, faithfulness, rank_agreement
from modelladder.explain.shapley import is_tree, output_units, shap_values
from modelladder.explain.text import html_snippet, lime_attribution, pieces, text_input, words_of_tokens
from modelladder.models.build import is_neural
from modelladder.runs import write_json

METHODS = {  # (data kind, rung family) -> the methods that apply, the first one shown first
    ("image", "neural"): ("ig", "saliency"),
    ("tabular", "neural"): ("ig", "saliency", "shap"),
    ("image", "classic"): ("shap",),
    ("tabular", "classic"): ("shap",),
    ("text", "neural"): ("ig", "lime"),
    ("text", "classic"): ("lime",),
}
LABELS = {"ig": "Integrated Gradients", "saliency": "saliency", "shap": "SHAP", "lime": "LIME"}
SIGNED = {"ig": True, "saliency": False, "shap": True, "lime": True}  # saliency gives magnitudes only
TOP = 10  # units listed per explanation in explain.json
GLOBAL_ROWS = 100  # test rows behind the global SHAP importance (20 for KernelExplainer, which is slower)


def rung_family(predictor) -> tuple[str, str]:
    return predictor.preprocess["kind"], "neural" if is_neural(predictor.model) else "classic"


def choose_methods(predictor, asked: list[str] | None) -> list[str]:
    """The methods to run: those asked for (each must apply to the rung), or all that apply."""
    kind, family = rung_family(predictor)
    allowed = METHODS[(kind, family)]
    bad = [m for m in asked or [] if m not in allowed]
    if bad:
        raise InputError([f"--method '{m}' does not apply to run {predictor.run_dir} ({predictor.cfg.model.name}, "
                          f"a {family} rung on {kind} data); choose from {', '.join(allowed)}"
                          + did_you_mean(m, allowed) for m in bad])
    return list(dict.fromkeys(asked)) if asked else list(allowed)


def class_index(predictor, target: str | None) -> int | None:
    if not predictor.classes or predictor.cfg.task.name != "classification":
        raise InputError(f"explain needs a classification run; {predictor.run_dir} was trained with "
                         f"task.name '{predictor.cfg.task.name}'")
    if target is None:
        return None
    if target not in predictor.classes:
        raise InputError(f"--target '{target}' is not a class of run {predictor.run_dir}; the classes are "
                         f"{predictor.classes}" + did_you_mean(target, predictor.classes))
    return predictor.classes.index(target)


class RunExplainer:
    """One run's explanations: builds each input's units, runs the methods, measures faithfulness."""

    def __init__(self, predictor, *, seed: int = 0, lime_samples: int = 500):
        self.predictor, self.seed, self.lime_samples = predictor, seed, lime_samples
        self.kind, self.family = rung_family(predictor)

    @cached_property
    def data(self):
        from modelladder.verbs.build import load_run_data

        return load_run_data(self.predictor.cfg)

    def subject(self, x):
        p = self.predictor
        if self.kind == "text":  # LIME may remove every word: such a probe is scored, not refused as an input is
            from modelladder.data.text import clean_texts

            clean = p.preprocess["transform"]["clean"]
            return text_input(str(x), lambda texts: p.scores(clean_texts(texts, clean)))
        transform = p.preprocess["transform"]
        if self.kind == "image":
            from modelladder.data.images import transform_images

            c, h, w = transform["channels"], transform["height"], transform["width"]
            blank = transform_images(transform, np.zeros((1, c, h, w), np.float32))[0]  # a black image
            units = [f"pixel ({r}, {col})" for r in range(h) for col in range(w)]
            return ArrayInput(np.asarray(x, np.float32), blank, np.tile(np.arange(h * w), c), units, p.scores)
        if "sources" in transform:  # each feature's column (tables with column roles: data/columns.py)
            columns = list(dict.fromkeys(transform["sources"]))
            unit_of = [columns.index(c) for c in transform["sources"]]
        else:
            columns = transform["numeric"] + transform["categorical"]
            unit_of = list(range(len(transform["numeric"]))) + [
                len(transform["numeric"]) + j for j, c in enumerate(transform["categorical"])
                for _ in transform["categories"][c]]
        mean_row = self.data.X_train.mean(axis=0).astype(np.float32)  # a removed column takes its mean
        return ArrayInput(np.asarray(x, np.float32), mean_row, np.asarray(unit_of), columns, p.scores)

    def background(self) -> np.ndarray:
        X = self.data.X_train
        rows = np.random.default_rng(self.seed).choice(len(X), min(len(X), 1000), replace=False)
        return np.asarray(X)[np.sort(rows)]

    def attribute(self, method: str, subjects: list, targets: np.ndarray) -> list[tuple[np.ndarray, dict]]:
        """(scores per unit, details) for each subject and its target class."""
        p = self.predictor
        if method == "shap":
            values = shap_values(p, np.stack([s.x for s in subjects]), targets, self.background(), seed=self.seed)
            kind = "tree" if is_tree(p) else "kernel"
            return [(s.per_unit(v), {"explainer": kind, "output": output_units(p)}) for s, v in zip(subjects, values)]
        if method == "lime":
            return [lime_attribution(s, int(t), p.classes, samples=self.lime_samples, seed=self.seed)
                    for s, t in zip(subjects, targets)]
        out = []
        for s, t in zip(subjects, targets):
            if self.kind == "text":
                tokens, details = neural.token_attribution(p.model, p.encoder, s.text, int(t))
                details["tokens"] = [[tok, round(float(v), 5)] for tok, v, special in
                                     zip(tokens["tokens"], tokens["scores"], tokens["special"]) if not special]
                out.append((words_of_tokens(s, tokens), details))
            else:
                features, details = neural.tensor_attribution(p.model, method, s.x, s.baseline, int(t))
                out.append((s.per_unit(features), details))
        return out


def explain_run(predictor, X, names: list[str], *, methods: list[str] | None = None, target: str | None = None,
                seed: int = 0, lime_samples: int = 500) -> dict:
    """Explain each input (features as Predictor.features gives them; `names` say what each is), write
    explain.json and the pictures into the run folder, re-render its report; return the explain record."""
    run_dir = Path(predictor.run_dir)
    methods = choose_methods(predictor, methods)
    fixed = class_index(predictor, target)
    if len(X) == 0:
        raise InputError("explain got no inputs (the input files hold no rows or texts)")
    explainer = RunExplainer(predictor, seed=seed, lime_samples=lime_samples)
    probs = predictor.scores(X)
    targets = probs.argmax(axis=1) if fixed is None else np.full(len(X), fixed)
    subjects = [explainer.subject(x) for x in X]
    results = {m: explainer.attribute(m, subjects, targets) for m in methods}
    for old in (run_dir / "pictures").glob("explain-*.png"):
        old.unlink()  # the pictures of an earlier explain: explain.json is replaced too
    records = [_input_record(explainer, run_dir, i, names[i], subjects[i], probs[i], int(targets[i]),
                             {m: results[m][i] for m in methods}) for i in range(len(X))]
    record = {"run": str(run_dir), "model": predictor.cfg.model.name, "data": explainer.kind,
              "family": explainer.family, "methods": methods,
              "target": target or "each input's predicted class", "seed": seed,
              "inputs": records, "summary": _summary(records, methods)}
    if "shap" in methods and explainer.kind == "tabular":
        record["global"] = _global_importance(explainer, run_dir)
    write_json(run_dir / "explain.json", record)
    record["reports"] = _rerender(run_dir)
    return record


def page_explainer(predictor, *, seed: int = 0, lime_samples: int = 500) -> Callable[[np.ndarray], dict] | None:
    """For `ladder serve`'s page (serve/page.py): a function that explains one input, or None for a run that is
    not a classifier. A table's training data (the mean row a removed column takes) is loaded at the first call."""
    if not predictor.classes or predictor.cfg.task.name != "classification":
        return None
    return partial(explain_one, RunExplainer(predictor, seed=seed, lime_samples=lime_samples))


def explain_one(explainer: RunExplainer, X) -> dict:
    """The first input of `X` (features as Predictor.features gives them) explained for its predicted class by
    the rung's first method (METHODS), picture and faithfulness as `ladder explain` makes them; nothing is
    written to the run folder: the picture comes back as PNG bytes under "png"."""
    method = METHODS[(explainer.kind, explainer.family)][0]
    probs = explainer.predictor.scores(X[:1])[0]
    target = int(probs.argmax())
    subject = explainer.subject(X[0])
    result = explainer.attribute(method, [subject], np.array([target]))[0]
    with tempfile.TemporaryDirectory() as folder:
        record = _input_record(explainer, Path(folder), 0, "the input", subject, probs, target, {method: result})
        entry = record["methods"][method]
        png = (Path(folder) / entry["picture"]).read_bytes()
    faith = {k: v for k, v in entry["faithfulness"].items() if k.endswith("_auc")}
    return {"method": method, "label": LABELS[method], "predicted": record["predicted"],
            "probability": record["probability"], "top": entry["top"], "faithfulness": faith, "png": png}


def _input_record(explainer: RunExplainer, run_dir: Path, index: int, name: str, subject, probs: np.ndarray,
                  target: int, results: dict) -> dict:
    classes = explainer.predictor.classes
    predicted = int(probs.argmax())
    record = {"input": name, "predicted": classes[predicted], "probability": round(float(probs[predicted]), 4),
              "target": classes[target], "target_probability": round(float(probs[target]), 4),
              "methods": {}, "agreement": {}}
    for method, (scores, details) in results.items():
        faith = faithfulness(subject, scores, target, seed=explainer.seed)
        picture = Path("pictures") / f"explain-{index:02d}-{method}.png"
        title = f"{LABELS[method]}: {_short(name)}\nclass '{classes[target]}' (p={probs[target]:.2f})"
        _picture(explainer, run_dir / picture, subject, scores, SIGNED[method], title, faith)
        order = np.argsort(-np.abs(scores), kind="stable")[:TOP]
        entry = {"top": [{"unit": subject.units[u], "score": round(float(scores[u]), 5)} for u in order],
                 "faithfulness": faith, "picture": str(picture), **details}
        if explainer.kind == "text":
            entry["html"] = html_snippet(subject, scores)
        record["methods"][method] = entry
    methods = list(results)
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            record["agreement"][f"{a} vs {b}"] = rank_agreement(results[a][0], results[b][0],
                                                                signed=SIGNED[a] and SIGNED[b])
    return record


def _picture(explainer: RunExplainer, path: Path, subject, scores: np.ndarray, signed: bool, title: str,
             faith: dict) -> None:
    if explainer.kind == "text":
        pictures.text_picture(path, pieces(subject, scores), title=title, faith=faith)
    elif explainer.kind == "tabular":
        pictures.bars_picture(path, subject.units, scores, title=title, faith=faith)
    else:
        transform = explainer.predictor.preprocess["transform"]
        c, h, w = transform["channels"], transform["height"], transform["width"]
        mean = np.asarray(transform["mean"]).reshape(c, 1, 1)
        std = np.asarray(transform["std"]).reshape(c, 1, 1)
        image = np.clip(subject.x * std + mean, 0, 1)  # features back to raw / pixel_max
        image = image[0] if c == 1 else image.transpose(1, 2, 0)
        pictures.image_picture(path, image, scores.reshape(h, w), signed=signed, title=title, faith=faith)


def _summary(records: list[dict], methods: list[str]) -> dict:
    """Per method the mean areas over the inputs and how many inputs beat the random order; per pair of
    methods the mean rank agreement."""
    out = {}
    for m in methods:
        faiths = [r["methods"][m]["faithfulness"] for r in records]
        out[m] = {key: round(float(np.mean([f[key] for f in faiths])), 4) for key in
                  ("deletion_auc", "random_deletion_auc", "insertion_auc", "random_insertion_auc")}
        out[m]["beats_random"] = f"{sum(f['deletion_auc'] < f['random_deletion_auc'] for f in faiths)}/{len(faiths)}"
    for pair in records[0]["agreement"]:
        values = [r["agreement"][pair] for r in records if r["agreement"][pair] is not None]
        out[pair] = round(float(np.mean(values)), 4) if values else None
    return out


def _global_importance(explainer: RunExplainer, run_dir: Path) -> dict:
    """Mean |SHAP| per column over a sample of the test split, each row explained for its predicted class."""
    p = explainer.predictor
    X = np.asarray(explainer.data.X_test)
    rows = GLOBAL_ROWS if is_tree(p) else GLOBAL_ROWS // 5
    X = X[np.sort(np.random.default_rng(explainer.seed).choice(len(X), min(rows, len(X)), replace=False))]
    values = shap_values(p, X, p.scores(X).argmax(axis=1), explainer.background(), seed=explainer.seed)
    subject = explainer.subject(X[0])
    importance = np.abs(np.stack([subject.per_unit(v) for v in values])).mean(axis=0)
    picture = Path("pictures") / "explain-global-shap.png"
    pictures.bars_picture(run_dir / picture, subject.units, importance, faith=None, xlabel="mean |SHAP value|",
                          title=f"global importance: mean |SHAP| over {len(X)} test rows ({output_units(p)})")
    order = np.argsort(-importance, kind="stable")
    return {"method": "shap", "split": "test", "rows": len(X), "output": output_units(p), "picture": str(picture),
            "importance": [{"unit": subject.units[u], "mean_abs_shap": round(float(importance[u]), 5)} for u in order]}


def _rerender(run_dir: Path) -> list[str]:
    """The run's report.html, and its ladder's when the run is a rung of one."""
    from modelladder.report import write_report

    folders = [run_dir] + ([run_dir.parent] if (run_dir.parent / "leaderboard.json").is_file() else [])
    return [str(write_report(folder)) for folder in folders]


def _short(name: str, length: int = 50) -> str:
    return name if len(name) <= length else name[: length - 3] + "..."


def summary_table(record: dict):
    """A rich Table: per input and method the predicted class, the top attributions and the faithfulness
    areas next to the random orders'; the methods' agreement in the caption."""
    from rich.table import Table

    table = Table(title=f"explain {record['run']} ({record['model']}, {record['family']} rung on {record['data']} data)")
    for column in ("input", "prediction", "method", "top attributions", "deletion AUC (random)",
                   "insertion AUC (random)", "agreement"):
        table.add_column(column, overflow="fold")
    for item in record["inputs"]:
        agreement = ", ".join(f"{pair}: {'n/a' if rho is None else f'{rho:+.2f}'}"
                              for pair, rho in item["agreement"].items())
        for k, (method, entry) in enumerate(item["methods"].items()):
            faith = entry["faithfulness"]
            top = ", ".join(f"{u['unit']} {u['score']:+.3g}" for u in entry["top"][:3])
            table.add_row(_short(item["input"], 40) if k == 0 else "",
                          f"{item['predicted']} ({item['probability']:.2f})" if k == 0 else "",
                          method, top, f"{faith['deletion_auc']:.3f} ({faith['random_deletion_auc']:.3f})",
                          f"{faith['insertion_auc']:.3f} ({faith['random_insertion_auc']:.3f})",
                          agreement if k == 0 else "")
    if "global" in record:
        top = ", ".join(f"{u['unit']} {u['mean_abs_shap']:.3g}" for u in record["global"]["importance"][:5])
        table.caption = f"global mean |SHAP| over {record['global']['rows']} test rows: {top}"
    return table


def main(args) -> int:
    """`ladder explain RUN --input PATH ... | --text TEXT ... [--method M] [--target CLASS] [--max-inputs N]`."""
    from rich.console import Console

    from modelladder.verbs.predict import read_inputs

    if args.max_inputs < 1 or args.lime_samples < 10:
        raise InputError(f"--max-inputs must be >= 1 and --lime-samples >= 10, got {args.max_inputs} and "
                         f"{args.lime_samples}")
    predictor, X, names = read_inputs(args.run, args.inputs, args.texts, "explain")
    record = explain_run(predictor, X[: args.max_inputs], names[: args.max_inputs], methods=args.methods,
                         target=args.target, seed=args.seed, lime_samples=args.lime_samples)
    console = Console(width=max(Console().width, 120))
    console.print(summary_table(record))
    if len(names) > args.max_inputs:
        console.print(f"explained the first {args.max_inputs} of {len(names)} inputs (--max-inputs)")
    console.print(f"written: {args.run / 'explain.json'}, {args.run / 'pictures'}/explain-*.png, "
                  + ", ".join(record["reports"]))
    return 0
