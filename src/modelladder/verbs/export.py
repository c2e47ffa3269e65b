"""`ladder export RUN --format onnx|hf|torch --out DIR`: a trained run in a format other tools load, checked by
the tool that will load it before the folder appears.

The files are written to a temporary folder beside DIR, loaded back by their real consumer (onnxruntime for
onnx, transformers (and peft) for hf, torch + safetensors for torch), run on the run's test split (a seeded
sample of at most 2,000 examples for larger splits) next to our own Predictor, and the comparison is written
to DIR/export.json. Only when the outputs agree within the stated tolerance and every argmax is the same is the
folder renamed to DIR; otherwise nothing is left behind and the command exits 1. A run that cannot be exported
in the format asked is an InputError (exit 2) saying why, given before any data is read. The formats live in
verbs/export_onnx.py (onnx; verbs/export_seq2seq.py for seq2seq networks: two graphs and greedy decoding, checked
by output sequence), verbs/export_hf.py (hf and torch) and verbs/export_lm.py (hf for hf_causal_lm),
imported only when asked for; what they share (the comparison and its tolerances, the test inputs) in
verbs/export_check.py.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from modelladder.errors import InputError
from modelladder.runs import read_run_config, write_json
from modelladder.verbs.export_check import ExportMismatch, check_inputs

FORMATS = ("onnx", "hf", "torch")
WRITERS = {"onnx": "export_onnx:write", "hf": "export_hf:write_hf", "torch": "export_hf:write_torch"}
REFUSALS = {"onnx": "export_onnx:refusal", "hf": "export_hf:hf_refusal", "torch": "export_hf:torch_refusal"}


def main(args) -> int:
    """`ladder export RUN --format F --out DIR [--adapters-only] [--overwrite]`."""
    if args.format not in FORMATS:
        raise InputError(f"--format must be one of {list(FORMATS)}, got {args.format!r}")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(f"--out {out} already exists; pass --overwrite to replace it")
    if args.adapters_only and args.format != "hf":
        raise InputError(f"--adapters-only applies to --format hf (PEFT adapters), got --format {args.format}")
    cfg = read_run_config(args.run, "RUN")
    refused = refusal(cfg, args.format)
    if refused:
        raise InputError(refused)
    try:
        if args.format == "hf" and cfg.model.name == "hf_causal_lm":  # a `ladder pretrain` run: no Predictor
            write_language_model = _function("export_lm:write_language_model")
            record = staged(out, _header(args.run, cfg, args.format),
                            lambda tmp: write_language_model(args.run, tmp, adapters_only=args.adapters_only))
        else:
            from modelladder.serve.predictor import Predictor

            record = export_run(Predictor.load(args.run), args.format, out, adapters_only=args.adapters_only)
    except ExportMismatch as err:
        print(f"error: export of {args.run} to {args.format} failed its check, nothing was written: {err}",
              file=sys.stderr)
        return 1
    check = record["verification"]
    print(f"exported {args.run} ({record['model']}) as {args.format} to {out}: {check['runtime']} on "
          f"{check['n']} {check['split']} examples, max |diff| of {check['compared']} {check['max_abs_diff']:.2e} "
          f"(tolerance {check['tolerance']:.0e})"
          + (f", argmax agreement {check['argmax_agreement']:.0%}" if "argmax_agreement" in check else "")
          + (f", output sequences ({check['decoding']}) agree on {check['sequence_agreement']:.0%}" if "sequence_agreement" in check
             else "")
          + (f" (beam {check['beam_search']['beam']}, the run's decoding: {check['beam_search']['sequence_agreement']:.1%})"
             if "beam_search" in check else ""))
    return 0


def refusal(cfg, fmt: str) -> str | None:
    """Why a run with config `cfg` cannot be exported to `fmt` (read before any data is loaded); None if it can."""
    return _function(REFUSALS[fmt])(cfg)


def export_run(predictor, fmt: str, out: Path, *, adapters_only: bool = False) -> dict:
    """Write the export of `predictor`'s run to `out` through a temporary folder; its export.json record.
    Raises InputError when the run cannot be exported to `fmt`, ExportMismatch when the check fails."""
    seq2seq = fmt == "onnx" and predictor.cfg.task.name == "seq2seq"  # two graphs and a decoding rule
    writer = _function("export_seq2seq:write" if seq2seq else WRITERS[fmt])

    def build(tmp: Path) -> dict:
        X, split, n_split = check_inputs(predictor)
        record = writer(predictor, tmp, X, adapters_only=adapters_only)
        if predictor.calibration is not None and (predictor.run_dir / "calibration.json").is_file():
            shutil.copyfile(predictor.run_dir / "calibration.json", tmp / "calibration.json")
            record["calibration"] = ("the outputs are the model's own; calibration.json (beside) rescales the "
                                     "logits to the run's calibrated probabilities")
        return {**record, "checked_on": {"split": split, "n": len(X), "n_split": n_split}}

    return staged(out, _header(predictor.run_dir, predictor.cfg, fmt), build)


def staged(out: Path, header: dict, build) -> dict:
    """`build(tmp)` writes the files into a temporary folder beside `out` and returns its record, with
    "comparison" (a Comparison), "runtime" and "checked_on" (split, n, n_split); export.json is added and the
    folder renamed to `out` only when the comparison passes (else ExportMismatch, and nothing is left)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        record = build(tmp)
        comparison, checked = record.pop("comparison"), record.pop("checked_on")
        check = {**checked, "sampled": checked["n"] < checked["n_split"], **record.pop("runtime"),
                 **comparison.record()}
        record = {**header, **record, "verification": check}
        if not check["passed"]:
            raise ExportMismatch(f"max |diff| of {check['compared']} {check['max_abs_diff']:.3g} on {check['n']} "
                                 f"{check['split']} examples (tolerance {check['tolerance']:.0e}), argmax agreement "
                                 f"{check.get('argmax_agreement', 1.0):.2%}"
                                 + (f", output sequences ({check['decoding']}) agree on {check['sequence_agreement']:.2%} "
                                    f"({check['sequences_differing']} differ)" if "sequence_agreement" in check else ""))
        record["files"] = sorted(p.name for p in tmp.iterdir()) + ["export.json"]
        write_json(tmp / "export.json", record)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        return record
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _header(run_dir, cfg, fmt: str) -> dict:
    return {"run": str(run_dir), "model": cfg.model.name, "task": cfg.task.name, "format": fmt}


def _function(target: str):
    """The function "module:function" of verbs/, imported when used (only the format asked for is imported)."""
    import importlib

    module, _, function = target.partition(":")
    return getattr(importlib.import_module(f"modelladder.verbs.{module}"), function)
