"""Sequence to sequence (G2P, translation): teacher-forced token cross-entropy in training, decoded outputs scored
by word error rate, symbol ("phoneme") error rate and exact match on the test split.

Training: the loop batches source token sequences with their targets as padded symbol ids (data/seq2seq.py
encode_targets: the first reference, then </s>). The loss is the cross-entropy of each target token given the
reference's earlier ones (teacher forcing), <pad> ignored, with optional label smoothing (task.label_smoothing).
Validation (the loop's evaluate, the model in eval mode) reports the token loss and token accuracy under teacher
forcing, and decodes every source greedily to report WER (the monitor: what a ladder ranks, tests and tunes on),
PER and exact match against all references of the source, so a selection (train.early_stopping on val_wer,
`ladder tune`) is made on validation words only.

Test: evaluate_model decodes every source (greedy, or beam search with eval.beam and eval.length_penalty;
models/seq2seq_decode.py) and scores the outputs against ALL references of a source (evaluate/seq2seq.py), with
Wilson / bootstrap intervals; for data whose preprocess names corpus_metrics (dataset parallel: BLEU and chrF),
those too, through sacrebleu; evaluate_run writes its predictions_<split>.csv (source, references, prediction,
errors), and evaluate_model itself
for an rnn with attention, attention.json: the attention weights of a few test words for the report.
A scikit-learn-style rung (family classic, e.g. letter_to_sound) is scored the same way through its predict.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modelladder.data.seq2seq import BOS, PAD, decode_targets, decoding_length
from modelladder.evaluate.seq2seq import (
    corpus_metrics,
    metrics_from_scores,
    sequence_intervals,
    sequence_metrics,
    sequence_scores,
)
from modelladder.tasks.base import Task

ATTENTION_EXAMPLES = 8  # test words whose attention weights are kept for the report
COMMON_ERRORS = 20  # the most frequent symbol confusions kept in eval_<split>.json


class Seq2Seq(Task):
    target_dtype = torch.long
    monitor = ("wer", "min")
    predicts = True

    def __init__(self, vocab: list[str], *, label_smoothing: float = 0.0, beam: int = 1,
                 length_penalty: float = 1.0, max_length: int = 64, seed: int = 0,
                 corpus_metrics: tuple[str, ...] = ()):
        self.vocab, self.label_smoothing = vocab, label_smoothing
        self.beam, self.length_penalty, self.max_length, self.seed = beam, length_penalty, max_length, seed
        self.corpus_metrics = tuple(corpus_metrics)

    @classmethod
    def problems(cls, cfg, data) -> list[str]:
        if data.kind != "seq2seq":
            return [(f"task.name 'seq2seq' needs a sequence-to-sequence dataset (cmudict, or parallel source/target "
                     f"pairs), but data.dataset '{cfg.data.dataset}' is {data.kind} data")]
        return []

    @classmethod
    def from_config(cls, cfg, data) -> Seq2Seq:
        return cls(data.preprocess["target_vocab"], label_smoothing=cfg.task.label_smoothing, beam=cfg.eval.beam,
                   length_penalty=cfg.eval.length_penalty, max_length=decoding_length(data.preprocess), seed=cfg.seed,
                   corpus_metrics=data.preprocess.get("corpus_metrics", ()))

    # ------------------------------------------------------------ training

    def loss(self, model: nn.Module, x, y: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced cross-entropy over the real target tokens; outputs: per example (summed token NLL,
        tokens, tokens right), which validation turns into token loss and accuracy. A model in eval mode
        (validation) also decodes its sources greedily: the outputs then go on with the decoded ids, padded with
        <pad> to max_length columns, which metrics() scores against every reference. y is (B, T) target ids, or
        (B, R, T) with every reference of a validation row (data/seq2seq.py encode_references): the first is the
        one teacher-forced."""
        y = y[:, 0] if y.dim() == 3 else y
        y = y[:, : max(int((y != PAD).sum(1).max()), 1)] if len(y) else y
        target_in = torch.cat([torch.full_like(y[:, :1], BOS), y[:, :-1]], dim=1)
        logits = model(x, target_in).float()
        real = y != PAD
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=PAD,
                               label_smoothing=self.label_smoothing)
        with torch.no_grad():
            nll = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=PAD, reduction="none")
            right = (logits.argmax(-1) == y) & real
            stats = torch.stack([nll.view_as(y).sum(1), real.sum(1).float(), right.sum(1).float()], dim=1)
            if not model.training:
                stats = torch.cat([stats, self._greedy_ids(model, x).float()], dim=1)
        return loss, stats

    def _greedy_ids(self, model: nn.Module, x) -> Tensor:
        """(B, max_length) greedy output ids, <pad> after </s>: the same width for every batch."""
        from modelladder.models.seq2seq_decode import greedy

        ids = greedy(model, x, min(self.max_length, model.max_target_tokens))
        return F.pad(ids, (0, self.max_length - ids.shape[1]), value=PAD)

    def scores(self, outputs: Tensor) -> Tensor:
        return outputs

    def metrics(self, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        """Token loss and accuracy for teacher-forced statistics, with WER / PER / exact match when they carry
        greedy outputs (validation); WER / PER / exact match for decoded strings against their references."""
        if scores.dtype != object:  # (N, 3) teacher-forced statistics, then the greedy output ids in validation
            tokens = max(float(scores[:, 1].sum()), 1.0)
            out = {"token_loss": float(scores[:, 0].sum() / tokens), "token_accuracy": float(scores[:, 2].sum() / tokens)}
            if scores.shape[1] > 3:
                hyps = [decode_targets(row, self.vocab) for row in scores[:, 3:].astype(np.int64)]
                out |= sequence_metrics(hyps, self._references(y_true))
            return out
        return sequence_metrics(list(scores), list(y_true))

    def _references(self, y: np.ndarray) -> list[tuple[str, ...]]:
        """Reference tuples back from target ids: (N, T) one per row, (N, R, T) every one (all-<pad> left out)."""
        y = np.asarray(y)
        rows = y[:, None] if y.ndim == 2 else y
        return [tuple(decode_targets(ref, self.vocab) for ref in row if ref[0] != PAD) for row in rows]

    def decode(self, scores: np.ndarray) -> np.ndarray:
        return scores  # the decoded strings are the predictions

    def tuned_metrics(self) -> list[str]:
        """`ladder tune` scores a trial on its validation split decoded (verbs/tune.py trial_config: greedily)."""
        return ["wer", "per", "exact_match", *self.corpus_metrics]

    # ------------------------------------------------------------ test scoring

    def hypotheses(self, model, X: np.ndarray, run_dir: Path) -> np.ndarray:
        """The model's output strings for sources X: decoded by a network (its tokenizer.json), or a classic
        rung's predict."""
        from modelladder.models.build import is_neural

        if not is_neural(model):
            return np.asarray(model.predict(list(X)), dtype=object)
        from modelladder.data.tokenize import TextEncoder
        from modelladder.models.seq2seq_decode import translate

        encoder = TextEncoder.load(Path(run_dir) / "tokenizer.json")
        return translate(model, X, encoder, self.vocab, max_length=self.max_length, beam=self.beam,
                         length_penalty=self.length_penalty)

    def evaluate_model(self, model, X: np.ndarray, y: np.ndarray, run_dir: Path) -> tuple[dict, dict]:
        """Metrics with intervals on (X, y); details with the predictions table (evaluate_run writes it as
        predictions_<split>.csv); attention.json written for an rnn with attention (module docstring)."""
        started = time.perf_counter()
        hyps = self.hypotheses(model, X, run_dir)
        seconds = time.perf_counter() - started
        scores = sequence_scores(list(hyps), list(y))
        metrics = metrics_from_scores(scores)
        intervals, methods = sequence_intervals(scores, seed=self.seed)
        details = {"intervals": intervals, "interval_method": methods}
        if self.corpus_metrics:  # parallel text: corpus BLEU / chrF through sacrebleu, with how they were scored
            values, bounds, signatures = corpus_metrics(list(hyps), list(y), self.corpus_metrics, seed=self.seed)
            metrics |= values
            intervals |= bounds
            methods |= {name: "bootstrap" for name in values}
            details["sacrebleu"] = signatures
        details |= {"decoding": {"beam": self.beam, "length_penalty": self.length_penalty},
                   "latency": {"seconds_per_example": seconds / max(len(X), 1)},
                   "common_errors": common_errors(hyps, y), "predictions": _predictions(X, y, hyps, scores)}
        self._write_attention(model, X, Path(run_dir))
        return metrics, details

    def _write_attention(self, model, X: np.ndarray, run_dir: Path) -> None:
        """attention.json: for the first few test sources, the source tokens, the greedy output and its attention
        (one row of weights over the source per output symbol); only for an rnn with attention."""
        from modelladder.models.build import is_neural

        if not is_neural(model) or not model.records_attention or not len(X):
            return
        from modelladder.data.batches import TokenSequences
        from modelladder.data.seq2seq import EOS
        from modelladder.data.tokenize import TextEncoder
        from modelladder.models.seq2seq_decode import attention_weights
        from modelladder.runs import write_json

        encoder = TextEncoder.load(run_dir / "tokenizer.json")
        words = list(X[:ATTENTION_EXAMPLES])
        ids = encoder.encode(words)
        sequences = TokenSequences(ids, encoder.pad_id)
        x = sequences.take(torch.arange(len(words)))
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        out, weights = attention_weights(model, (x[0].to(device), x[1].to(device)), self.max_length)
        model.train(was_training)
        examples = []
        for i, word in enumerate(words):
            row = out[i].tolist()
            steps = row.index(EOS) + 1 if EOS in row else len(row)
            tokens = [encoder.tokenizer.id_to_token(int(t)) for t in ids[i]]
            examples.append({"source": word, "source_tokens": tokens,
                             "output": [self.vocab[t] for t in row[:steps]],
                             "weights": weights[i, :steps, : len(tokens)].cpu().numpy().round(4).tolist()})
        write_json(run_dir / "attention.json", {"examples": examples})


def common_errors(hyps, refs, top: int = COMMON_ERRORS) -> list[dict]:
    """The most frequent symbol substitutions, insertions and deletions against each word's closest reference."""
    from rapidfuzz.distance import Levenshtein

    counts: Counter = Counter()
    for hyp, choices in zip(hyps, refs):
        h = hyp.split()
        ref = min((r.split() for r in choices), key=lambda r: Levenshtein.distance(h, r))
        for op, i, j in Levenshtein.editops(ref, h):
            counts[(op, ref[i] if op != "insert" else "", h[j] if op != "delete" else "")] += 1
    return [{"op": op, "reference": r, "predicted": p, "count": n} for (op, r, p), n in counts.most_common(top)]


def _predictions(X, y, hyps, scores: dict):
    """What evaluate_run writes as predictions_<split>.csv: each source, its references, the output, its errors."""
    import pandas as pd

    return pd.DataFrame({"source": list(X), "true": [" | ".join(refs) for refs in y], "predicted": list(hyps),
                         "word_error": scores["word_error"], "phoneme_errors": scores["phoneme_errors"],
                         "phoneme_count": scores["phoneme_count"]})
