"""The verbs that use a trained run: evaluate, predict, explain, serve, report, audit."""

from __future__ import annotations

from pathlib import Path

from modelladder.cli.training import print_result, report_for
from modelladder.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def cmd_evaluate(args) -> int:
    from modelladder.pipeline import evaluate_run

    print_result(args.run, evaluate_run(args.run, split=args.split))
    return 0


def cmd_predict(args) -> int:
    import pandas as pd

    predictor, X, names = read_inputs(args.run, args.inputs, args.texts, "predict")
    scores = predictor.scores(X)
    frame = pd.DataFrame({"prediction": predictor.decode(scores)})
    if predictor.classes:
        frame["confidence"] = scores.max(axis=1)
    if predictor.preprocess["kind"] == "image":
        frame.insert(0, "file", names)
    if args.out:
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(args.out)
        print(f"{len(frame)} predictions written to {args.out}")
    else:
        print(frame.to_csv(index=False), end="")
    return 0


def cmd_explain(args) -> int:
    from rich.console import Console

    from modelladder.explain.run import explain_run, summary_table

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


def cmd_serve(args) -> int:
    from modelladder.serve.app import serve, settings_from_args

    settings = settings_from_args(args.max_batch, args.max_wait_ms, args.max_items, args.max_body_bytes,
                                  args.api_key)
    serve(args.run, host=args.host, port=args.port, settings=settings, log_level=args.log_level)
    return 0


def cmd_report(args) -> int:
    print(f"written: {report_for(args.folder)}")
    return 0


def cmd_audit(args) -> int:
    from rich.console import Console

    from modelladder.audit.run import audit_run, audit_table

    columns = [c.strip() for c in (args.sensitive or "").split(",") if c.strip()]
    record = audit_run(args.run, columns, mitigate=args.mitigate, constraint=args.constraint)
    Console(width=max(Console().width, 120)).print(audit_table(record, f"{args.run.name}: fairness audit"))
    print(f"written: {args.run / 'audit.json'}, {report_for(args.run)}")
    return 0


def read_inputs(run: Path, inputs: list[Path], texts: list[str], verb: str):
    """What `ladder predict` and `ladder explain` read: the run's Predictor, the features of the input files
    and --text strings (preprocessed as the training data) and a name for each input (file, row or text)."""
    import pandas as pd

    from modelladder.data.load import load_image_files
    from modelladder.serve.predictor import Predictor, read_table, read_texts

    if not inputs and not texts:
        raise InputError(f"{verb} needs input files or --text")
    predictor = Predictor.load(run)
    kind = predictor.preprocess["kind"]
    if texts and kind != "text":
        raise InputError(f"--text needs a run trained on text; {run} was trained on {kind} data")
    paths = expand_inputs(inputs)
    if kind == "image":
        return predictor, load_image_files(paths, predictor.preprocess["transform"]), [str(p) for p in paths]
    if kind == "text":
        every = [t for p in paths for t in read_texts(p, predictor.cfg.data.text or "text")] + list(texts)
        return predictor, predictor.features(every), every
    frames = [read_table(p) for p in paths]
    names = [f"{p} row {i + 1}" for p, frame in zip(paths, frames) for i in range(len(frame))]
    return predictor, predictor.features(pd.concat(frames, ignore_index=True)), names


def expand_inputs(inputs: list[Path]) -> list[Path]:
    paths = []
    for p in inputs:
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"input folder {p} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths += found
        elif not p.is_file():
            raise InputError(f"input file {p} does not exist")
        else:
            paths.append(p)
    return paths
