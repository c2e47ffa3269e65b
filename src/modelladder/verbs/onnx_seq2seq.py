"""Greedy decoding of a seq2seq run's ONNX export (`ladder export RUN --format onnx`) with onnxruntime, the
`tokenizers` library and numpy only: what `ladder export` runs to check the export, and what a consumer copies.

The export folder holds encoder.onnx, decoder.onnx, tokenizer.json (the source tokenizer, padding and truncation
set) and seq2seq.json, which names the graphs' inputs and outputs and the decoding rule:
- the encoder takes `input_ids`, `attention_mask` int64 (batch, source) and gives the decoder's first state
  (named tensors, batch first; `attention_mask` joins the state);
- the decoder takes the state tensors it names, plus `previous` (batch,) int64, the last token written (an RNN),
  or `prefix` (batch, steps) int64, every token written so far from <s> on (a Transformer); it gives `logits`
  (batch, target vocabulary) of the next token and, for each state tensor X it moves on, `next_X`;
- greedy: start from <s>, take the argmax, stop a row at </s> (then feed it <pad>), stop all at `max_length`
  steps; the output is the symbols before the first </s>, special tokens left out, joined by spaces.

`beam_ids` / `translate(..., beam=5)` run the beam search of models/seq2seq_decode.py over the same graphs (the
export's check compares it with the run's own decoding and records the agreement; greedy is what it must match).
This file imports nothing of modelladder: copy it beside an export to run it elsewhere.

    decoder = OnnxSeq2Seq("exports/g2p")
    decoder.translate(["ladder", "export"])     # ['L AE1 D ER0', 'EH1 K S P AO0 R T']
    decoder.translate(["ladder"], beam=5)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class OnnxSeq2Seq:
    """An exported seq2seq run loaded for greedy decoding with onnxruntime (module docstring)."""

    def __init__(self, folder, threads: int = 0):
        import onnxruntime
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.spec = json.loads((folder / "seq2seq.json").read_text(encoding="utf-8"))
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.encoder = onnxruntime.InferenceSession(str(folder / self.spec["encoder"]["file"]), options,
                                                    providers=["CPUExecutionProvider"])
        self.decoder = onnxruntime.InferenceSession(str(folder / self.spec["decoder"]["file"]), options,
                                                    providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(folder / self.spec["source"]["tokenizer"]))
        self.vocab = self.spec["target_vocab"]
        self.bos, self.eos, self.pad = self.spec["bos_id"], self.spec["eos_id"], self.spec["pad_id"]
        self.special = len(self.spec["special_tokens"])  # target ids below this are special tokens
        self.feeds = self.spec["decoder"]["feeds"]  # "previous" or "prefix"

    def tokenize(self, sources: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask) int64 (batch, longest source), padded at the end."""
        encoded = self.tokenizer.encode_batch(list(sources))
        return (np.array([e.ids for e in encoded], np.int64), np.array([e.attention_mask for e in encoded], np.int64))

    def start(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        """The decoder's first state: the encoder's outputs and the attention mask."""
        names = [o.name for o in self.encoder.get_outputs()]
        outputs = self.encoder.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
        return {**dict(zip(names, outputs)), "attention_mask": attention_mask}

    def step(self, tokens: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        """Logits (batch, vocabulary) of the next token; `tokens` is `previous` (batch,) or `prefix` (batch, steps)
        as the decoder takes; `state` is moved on in place."""
        feed = {i.name: tokens if i.name == self.feeds else state[i.name] for i in self.decoder.get_inputs()}
        names = [o.name for o in self.decoder.get_outputs()]
        outputs = dict(zip(names, self.decoder.run(None, feed)))
        for name, value in outputs.items():
            if name.startswith("next_"):
                state[name[len("next_"):]] = value
        return outputs["logits"]

    def greedy_ids(self, sources: list[str], on_step=None) -> np.ndarray:
        """(batch, steps) token ids, each row ending in </s> (then <pad>) unless it ran to max_length.
        `on_step(fed, logits, active)`, if given, sees each step's fed tokens, logits and unfinished rows."""
        input_ids, attention_mask = self.tokenize(sources)
        state = self.start(input_ids, attention_mask)
        batch = len(input_ids)
        previous = np.full(batch, self.bos, np.int64)
        prefix = np.zeros((batch, 0), np.int64)
        done = np.zeros(batch, bool)
        out = []
        for _ in range(self.spec["max_length"]):
            prefix = np.concatenate([prefix, previous[:, None]], axis=1)
            fed = prefix if self.feeds == "prefix" else previous
            logits = self.step(fed, state)
            if on_step is not None:
                on_step(previous, logits, ~done)
            previous = np.where(done, self.pad, logits.argmax(-1)).astype(np.int64)
            out.append(previous)
            done |= previous == self.eos
            if done.all():
                break
        return np.stack(out, axis=1) if out else np.zeros((batch, 0), np.int64)

    def beam_ids(self, sources: list[str], beam: int, length_penalty: float = 1.0) -> np.ndarray:
        """(batch, steps) token ids: the best of `beam` hypotheses per source, as models/seq2seq_decode.py's beam
        search ranks them (summed log-probabilities; an ended hypothesis extended by <pad> at no cost; finished
        ones ranked by score / length ** length_penalty, length in tokens with </s>)."""
        input_ids, attention_mask = self.tokenize(sources)
        batch = len(input_ids)
        rows = np.repeat(np.arange(batch), beam)
        state = {k: v[rows] for k, v in self.start(input_ids, attention_mask).items()}
        scores = np.zeros((batch, beam), np.float32)
        scores[:, 1:] = -np.inf  # the first step expands one hypothesis, not `beam` copies of it
        previous = np.full(batch * beam, self.bos, np.int64)
        prefix = tokens = np.zeros((batch * beam, 0), np.int64)
        for _ in range(self.spec["max_length"]):
            prefix = np.concatenate([prefix, previous[:, None]], axis=1)
            logits = self.step(prefix if self.feeds == "prefix" else previous, state).astype(np.float32)
            shifted = logits - logits.max(-1, keepdims=True)
            logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
            ended = (previous == self.eos) | (previous == self.pad)
            logp[ended] = -np.inf
            logp[ended, self.pad] = 0.0  # an ended hypothesis keeps its score
            vocab = logp.shape[-1]
            flat = (scores.reshape(-1, 1) + logp).reshape(batch, beam * vocab)
            index = np.argsort(-flat, axis=1, kind="stable")[:, :beam]
            scores = np.take_along_axis(flat, index, axis=1)
            rows = (np.arange(batch)[:, None] * beam + index // vocab).reshape(-1)
            previous = (index % vocab).reshape(-1).astype(np.int64)
            tokens = np.concatenate([tokens[rows], previous[:, None]], axis=1)
            prefix = prefix[rows]
            state = {k: v[rows] for k, v in state.items()}
            if ((previous == self.eos) | (previous == self.pad)).all():
                break
        lengths = np.maximum((tokens != self.pad).sum(1), 1).reshape(batch, beam).astype(np.float32)
        best = (scores / lengths ** length_penalty).argmax(1)
        return tokens.reshape(batch, beam, -1)[np.arange(batch), best]

    def text(self, ids) -> str:
        """Symbol ids up to the first </s> as a space-separated string, special tokens left out."""
        symbols = []
        for i in ids:
            if int(i) == self.eos:
                break
            if int(i) >= self.special:
                symbols.append(self.vocab[int(i)])
        return " ".join(symbols)

    def translate(self, sources: list[str], batch_size: int = 256, beam: int = 1,
                  length_penalty: float = 1.0) -> list[str]:
        """Output strings for cleaned source strings (as preprocess.json cleans them: stripped, lower-cased where
        the run's data was), decoded greedily (beam 1, the rule the export is checked with) or by beam search, in
        batches of `batch_size`."""
        out = []
        for i in range(0, len(sources), batch_size):
            batch = sources[i:i + batch_size]
            ids = self.greedy_ids(batch) if beam == 1 else self.beam_ids(batch, beam, length_penalty)
            out.extend(self.text(row) for row in ids)
        return out
