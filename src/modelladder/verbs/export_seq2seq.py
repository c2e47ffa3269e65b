"""`ladder export --format onnx` of a seq2seq network (seq2seq_rnn, every cell and attention; seq2seq_transformer):
an encoder graph and a one-step decoder graph, run by verbs/onnx_seq2seq.py's greedy loop (onnxruntime, numpy)
and checked against our own greedy decoding (models/seq2seq_decode.py, beam 1).

- encoder.onnx: `input_ids`, `attention_mask` int64 (batch, source) -> the decoder's first state. For the RNN:
  `memory` (batch, source, hidden) (zero on padding), `keys` (its attention's side of the scores, with attention),
  `h` and for an LSTM `c` (batch, layers, hidden). For the Transformer: `memory` (batch, source, dim).
- decoder.onnx, one step: the RNN takes `previous` (batch,) and the state (`memory`, `keys`, `attention_mask` with
  attention; `h`, `c`) and gives `logits` (batch, vocabulary), `next_h`, `next_c`; the Transformer takes `prefix`
  (batch, steps), every token written so far from <s> on, with `memory` and `attention_mask` and gives the last
  position's `logits` (no key/value cache, as models/seq2seq_transformer.py decodes).
- seq2seq.json: the graphs' inputs and outputs, the target vocabulary, the <pad> / <s> / </s> ids, max_length and
  the decoding rule; tokenizer.json and preprocess.json beside.

Batch, source length and prefix length are dynamic axes. The RNN encoder packs its batch by length
(pack_padded_sequence), which torch.export cannot trace, and torch.export fixes the length of any nn.LSTM / GRU it
traces; so the RNN's encoder graph is written node by node (onnx.helper): the embedding (Gather), one LSTM / GRU
node per layer (both directions in one, the weights in ONNX's gate order) given each row's length as
`sequence_lens` (the mask's row sums), with which onnxruntime stops a row's recurrence at its last real token and
gives zeros on padding, as packing does; then the bridge to the decoder's first state and the attention keys
(MatMul, Add, Tanh). Only the decoder step is traced (torch.onnx, the dynamo exporter).

The check (export.json "verification"): the exported folder decodes the run's test split (a seeded sample of at
most 2,000) greedily; every output sequence must equal ours, and the logits of every step, fed the same tokens in
lockstep with our model, within VALUE_TOLERANCE x max(1, max |logit|). A run evaluated with beam search (eval.beam)
is also decoded so over the graphs (verbs/onnx_seq2seq.py beam_ids) and its agreement with the run's own outputs
recorded under "beam_search": not required, since two hypotheses' scores within float error may rank apart.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modelladder.data.seq2seq import BOS, EOS, PAD, TARGET_SPECIAL, decoding_length
from modelladder.errors import InputError
from modelladder.runs import write_json
from modelladder.verbs.export_check import Comparison, ExportMismatch, SequenceComparison, copy_beside

BATCH = 256  # sources per greedy batch in the check
DECODING = ("greedy: start from <s> (bos_id); at each step feed the decoder the last token (previous) or every "
            "token so far (prefix), take the argmax of logits; a row that wrote </s> (eos_id) is finished and fed "
            "<pad> (pad_id); stop when every row is finished or after max_length steps; the output is the symbols "
            "before the first </s>, special tokens (ids below len(special_tokens)) left out, joined by spaces")


# ---------------------------------------------------------------- the graphs' modules


class _RNNStep(nn.Module):
    """One decoder step of the RNN: (previous, *state) -> (logits, next_h[, next_c])."""

    varargs = True  # its inputs depend on the cell and the attention

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        attention = ["memory", "keys", "attention_mask"] if model.attention != "none" else []
        self.names = ["previous", *attention, "h", *(["c"] if model.lstm else [])]
        self.outputs = ["logits", "next_h", *(["next_c"] if model.lstm else [])]

    def forward(self, *inputs):
        state = dict(zip(self.names[1:], inputs[1:]))
        if "attention_mask" in state:
            state["mask"] = state.pop("attention_mask") != 0
        logits, new = self.model.step(inputs[0], state)
        return (logits, new["h"], *([new["c"]] if self.model.lstm else []))


class _TransformerEncoder(nn.Module):
    """(input_ids, attention_mask) -> memory, the encoder's outputs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model.encoder(input_ids, attention_mask != 0)


class _TransformerStep(nn.Module):
    """(prefix, memory, attention_mask) -> the logits after the last token of the prefix."""

    names = ("prefix", "memory", "attention_mask")
    outputs = ("logits",)

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, prefix, memory, attention_mask):
        return self.model.decode(prefix, memory, attention_mask != 0)[:, -1]


# ---------------------------------------------------------------- export


def write(predictor, folder: Path, X, *, adapters_only: bool = False) -> dict:
    """encoder.onnx, decoder.onnx, seq2seq.json (+ tokenizer.json, preprocess.json) in `folder`; the record for
    export.json, with the greedy check under "comparison"."""
    name = predictor.cfg.model.name
    if name not in ("seq2seq_rnn", "seq2seq_transformer"):
        raise InputError(f"model {name} cannot be exported to ONNX for task seq2seq")
    model, rnn = predictor.model.eval(), name == "seq2seq_rnn"
    transform = predictor.preprocess["transform"]
    max_length = min(decoding_length(transform), model.max_target_tokens)
    step_module = (_RNNStep if rnn else _TransformerStep)(model).eval()
    examples = _examples(predictor, X, step_module, max_length)
    decoder = _export(predictor, step_module, examples["decoder"], folder / "decoder.onnx")
    if rnn:
        encoder = _rnn_encoder(model, folder / "decoder.onnx", folder / "encoder.onnx")
    else:
        encoder = _export(predictor, _TransformerEncoder(model).eval(), examples["encoder"], folder / "encoder.onnx")
    spec = {"encoder": {"file": "encoder.onnx", **encoder},
            "decoder": {"file": "decoder.onnx", **decoder, "feeds": step_module.names[0]},
            "source": {"tokenizer": "tokenizer.json", "preprocess": "preprocess.json",
                       "cleaning": "strip; lower-case when preprocess.json's transform says lowercase"},
            "target_vocab": transform["target_vocab"], "special_tokens": TARGET_SPECIAL, "pad_id": PAD,
            "bos_id": BOS, "eos_id": EOS, "max_length": max_length, "decoding": DECODING}
    write_json(folder / "seq2seq.json", spec)
    beside = copy_beside(predictor, folder)
    import onnxruntime

    from modelladder.verbs.export_onnx import OPSET

    return {"exporter": f"torch.onnx (dynamo, opset {OPSET}) torch {torch.__version__}"
                        + (" (the decoder); the RNN encoder written as ONNX nodes, LSTM / GRU with sequence_lens"
                           if rnn else ""),
            "graphs": {"encoder.onnx": encoder, "decoder.onnx": decoder}, "decoding": "greedy (seq2seq.json)",
            "run_decoding": {"beam": predictor.cfg.eval.beam, "length_penalty": predictor.cfg.eval.length_penalty},
            "beside": ["seq2seq.json", *beside], "runtime": {"runtime": f"onnxruntime {onnxruntime.__version__}"},
            "comparison": check(predictor, folder, X, max_length)}


def _examples(predictor, X, step_module, max_length: int) -> dict:
    """Example inputs, their description and dynamic axes for the encoder and the decoder step. Batch 3, source 7,
    prefix 4: sizes that differ, so that the tracer keeps the axes apart (1 would be specialised)."""
    from torch.export import Dim

    from modelladder.data.batches import TokenSequences

    encoder = predictor.encoder
    rows, length = 3, min(7, encoder.max_length)
    texts = list(X[:rows]) + ["ab"] * max(0, rows - len(X))
    ids, mask = TokenSequences(encoder.encode(texts), encoder.pad_id).take(torch.arange(rows))
    ids = nn.functional.pad(ids, (0, max(0, length - ids.shape[1])), value=encoder.pad_id)[:, :length]
    mask = nn.functional.pad(mask, (0, max(0, length - mask.shape[1])), value=False)[:, :length]
    mask[0] = True  # one full row: the graph must not assume every row is padded
    with torch.no_grad():
        state = {k: v for k, v in predictor.model.start((ids, mask)).items() if k != "mask"}
    state["attention_mask"], state["input_ids"] = mask.long(), ids
    axes = {"memory": ["batch", "source", None], "keys": ["batch", "source", None], "input_ids": ["batch", "source"],
            "attention_mask": ["batch", "source"], "h": ["batch", None, None], "c": ["batch", None, None],
            "prefix": ["batch", "steps"], "previous": ["batch"]}
    dims = {"batch": Dim("batch", min=1, max=1 << 20), "source": Dim("source", min=1, max=encoder.max_length),
            "steps": Dim("steps", min=1, max=max_length)}
    if step_module.names[0] == "prefix":
        state["prefix"] = torch.full((rows, min(4, max_length)), BOS, dtype=torch.long)
    else:
        state["previous"] = torch.full((rows,), BOS, dtype=torch.long)

    def graph(module, names, outputs):
        values = [state[n] for n in names]
        shapes = tuple({d: dims[a] for d, a in enumerate(axes[n]) if a} for n in names)
        return {"args": tuple(values), "inputs": _described(names, values, axes),
                "shapes": (shapes,) if getattr(module, "varargs", False) else shapes, "outputs": list(outputs)}

    return {"encoder": graph(None, ["input_ids", "attention_mask"], ["memory"]),
            "decoder": graph(step_module, list(step_module.names), step_module.outputs)}


def _described(names, values, axes) -> list[dict]:
    """The inputs of a graph as export.json lists them: name, dtype, shape (dynamic axes named)."""
    return [{"name": n, "dtype": "int64" if v.dtype == torch.long else "float32",
             "shape": [a or int(s) for a, s in zip(axes[n], v.shape)]} for n, v in zip(names, values)]


def _export(predictor, module: nn.Module, example: dict, path: Path) -> dict:
    """Trace `module` to `path`; the graph's inputs and outputs as export.json describes them."""
    from modelladder.verbs.export_onnx import OPSET, _check_dynamic, quiet_exporter

    with warnings.catch_warnings(), quiet_exporter(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(module, example["args"], dynamic_shapes=example["shapes"],
                                        input_names=[i["name"] for i in example["inputs"]],
                                        output_names=example["outputs"], opset_version=OPSET, dynamo=True,
                                        verbose=False)
        except Exception as err:  # noqa: BLE001 - torch.export's and onnxscript's errors share no base class
            lines = [line for line in str(err).strip().splitlines() if line.strip() and "stack trace" not in line]
            raise InputError(f"model {predictor.cfg.model.name} could not be traced for ONNX ({path.name}): "
                             f"{lines[-1] if lines else type(err).__name__}") from None
        program.save(str(path), external_data=False)
    _check_dynamic(predictor, path, example["inputs"])
    return {"inputs": example["inputs"], "outputs": example["outputs"]}


GATES = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}  # torch's gate blocks (i f g o / r z n) in ONNX's order (i o f c / z r h)


def _rnn_encoder(model, like: Path, path: Path) -> dict:
    """encoder.onnx of a seq2seq_rnn, written node by node (module docstring): input_ids, attention_mask -> memory
    (batch, source, hidden), keys (with attention), h [and c] (batch, layers, hidden), as Seq2SeqRNN.start; the
    opsets and IR version of the graph `like`. Its description for seq2seq.json."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rnn, lstm = model.encoder, model.lstm
    gates, order = (4 if lstm else 3), GATES["lstm" if lstm else "gru"]
    size, directions, layers = rnn.hidden_size, model.directions, model.layers
    hidden = size * directions
    init, nodes = [], []

    def const(name: str, value) -> str:
        init.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(t) -> np.ndarray:
        return t.detach().float().numpy()

    def reorder(w):  # (gates * size, ...) -> the same blocks in ONNX's gate order
        blocks = weight(w).reshape(gates, size, *w.shape[1:])
        return blocks[order].reshape(gates * size, *w.shape[1:])

    def linear(x: str, layer: nn.Linear, out: str) -> None:
        nodes.append(helper.make_node("MatMul", [x, const(f"{out}_weight", weight(layer.weight).T.copy())],
                                      [out if layer.bias is None else f"{out}_product"]))
        if layer.bias is not None:
            nodes.append(helper.make_node("Add", [f"{out}_product", const(f"{out}_bias", weight(layer.bias))], [out]))

    nodes += [helper.make_node("Gather", [const("embedding", weight(model.source_embed.weight)), "input_ids"],
                               ["embedded"]),
              helper.make_node("Transpose", ["embedded"], ["x0"], perm=[1, 0, 2]),  # (source, batch, embed)
              helper.make_node("ReduceSum", ["attention_mask", const("axis1", np.array([1], np.int64))],
                               ["lengths64"], keepdims=0),
              helper.make_node("Cast", ["lengths64"], ["lengths"], to=TensorProto.INT32)]
    finals: dict[str, list[str]] = {"h": [], "c": []}
    x, join = "x0", const("join_shape", np.array([0, 0, -1], np.int64))
    for layer in range(layers):
        suffixes = ("", "_reverse")[:directions]
        W = np.stack([reorder(getattr(rnn, f"weight_ih_l{layer}{s}")) for s in suffixes])
        R = np.stack([reorder(getattr(rnn, f"weight_hh_l{layer}{s}")) for s in suffixes])
        B = np.stack([np.concatenate([reorder(getattr(rnn, f"bias_ih_l{layer}{s}")),
                                      reorder(getattr(rnn, f"bias_hh_l{layer}{s}"))]) for s in suffixes])
        names = [const(f"W{layer}", W), const(f"R{layer}", R), const(f"B{layer}", B)]
        outs = [f"Y{layer}", f"h{layer}", *([f"c{layer}"] if lstm else [])]
        extra = {} if lstm else {"linear_before_reset": 1}  # torch's GRU applies r after the hidden's linear map
        nodes.append(helper.make_node("LSTM" if lstm else "GRU", [x, *names, "lengths"], outs, hidden_size=size,
                                      direction="bidirectional" if directions == 2 else "forward", **extra))
        # Y (source, directions, batch, size) -> (source, batch, directions * size): the directions' outputs joined
        nodes += [helper.make_node("Transpose", [outs[0]], [f"Yt{layer}"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", [f"Yt{layer}", join], [f"x{layer + 1}"])]
        x = f"x{layer + 1}"
        finals["h"].append(outs[1])
        if lstm:
            finals["c"].append(outs[2])
    nodes.append(helper.make_node("Transpose", [x], ["memory"], perm=[1, 0, 2]))  # (batch, source, hidden)
    outputs = ["memory"]
    if model.attention != "none":
        linear("memory", model.key, "keys")
        outputs.append("keys")
    # each layer's (directions, batch, size) -> (batch, layers, directions * size) -> the bridge
    split = const("split_shape", np.array([layers, directions, -1, size], np.int64))
    merge = const("merge_shape", np.array([0, layers, hidden], np.int64))
    for name in ("h", "c")[: 2 if lstm else 1]:
        nodes += [helper.make_node("Concat", finals[name], [f"final_{name}"], axis=0),
                  helper.make_node("Reshape", [f"final_{name}", split], [f"split_{name}"]),
                  helper.make_node("Transpose", [f"split_{name}"], [f"batch_first_{name}"], perm=[2, 0, 1, 3]),
                  helper.make_node("Reshape", [f"batch_first_{name}", merge], [f"joined_{name}"])]
        linear(f"joined_{name}", model.bridge, f"bridged_{name}" if name == "h" else name)
        if name == "h":
            nodes.append(helper.make_node("Tanh", ["bridged_h"], ["h"]))
        outputs.append(name)
    shapes = {"memory": ["batch", "source", hidden], "keys": ["batch", "source", hidden],
              "h": ["batch", layers, hidden], "c": ["batch", layers, hidden]}
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "source"])
              for n in ("input_ids", "attention_mask")]
    graph = helper.make_graph(nodes, "encoder", inputs,
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[n]) for n in outputs], init)
    reference = onnx.load(str(like), load_external_data=False)
    encoder = helper.make_model(graph, opset_imports=[o for o in reference.opset_import if o.domain == ""],
                                ir_version=reference.ir_version, producer_name="modelladder")
    onnx.checker.check_model(encoder, full_check=True)
    onnx.save(encoder, str(path))
    return {"inputs": [{"name": n, "dtype": "int64", "shape": ["batch", "source"]}
                       for n in ("input_ids", "attention_mask")], "outputs": outputs}


# ---------------------------------------------------------------- the check


def check(predictor, folder: Path, X, max_length: int) -> Comparison:
    """Greedy decoding of X by the export (verbs/onnx_seq2seq.py) against ours (models/seq2seq_decode.py, beam 1),
    and the logits of every step of every unfinished row, our model fed the same tokens."""
    from modelladder.models.seq2seq_decode import translate
    from modelladder.verbs.onnx_seq2seq import OnnxSeq2Seq

    model = predictor.model
    vocab = predictor.preprocess["transform"]["target_vocab"]
    ours = translate(model, X, predictor.encoder, vocab, max_length=max_length, beam=1, batch_size=BATCH)
    runtime = OnnxSeq2Seq(folder, threads=torch.get_num_threads())
    theirs, ours_logits, their_logits = [], [], []
    sources = list(X)
    for i in range(0, len(sources), BATCH):
        batch = sources[i:i + BATCH]
        ids, mask = runtime.tokenize(batch)
        with torch.no_grad():
            state = {"value": model.start((torch.as_tensor(ids), torch.as_tensor(mask) != 0))}

        def on_step(previous, logits, active, state=state):
            with torch.no_grad():
                step_logits, state["value"] = model.step(torch.as_tensor(previous), state["value"])
            ours_logits.append(step_logits.numpy()[active])
            their_logits.append(logits[active])

        theirs.extend(runtime.text(row) for row in runtime.greedy_ids(batch, on_step))
    if not ours_logits:
        raise ExportMismatch("there is no test example to check the export on")
    extra = {"compared_what": "logits of every greedy step", "decoding": "greedy", **_agreement(ours, theirs)}
    beam, penalty = predictor.cfg.eval.beam, predictor.cfg.eval.length_penalty
    if beam > 1:  # the run's own decoding over the same graphs: recorded, not required (near-ties may rank apart)
        theirs = runtime.translate(sources, BATCH, beam=beam, length_penalty=penalty)
        extra["beam_search"] = {"beam": beam, "length_penalty": penalty,
                                **_agreement(predictor.sequences(np.asarray(X, dtype=object)), theirs)}
    return SequenceComparison("values", np.concatenate(ours_logits), np.concatenate(their_logits), extra)


def _agreement(ours, theirs) -> dict:
    same = np.array([a == b for a, b in zip(ours, theirs)], dtype=bool)
    return {"sequence_agreement": float(same.mean()) if len(same) else 1.0, "sequences_differing": int((~same).sum())}
