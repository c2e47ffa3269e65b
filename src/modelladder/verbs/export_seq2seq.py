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
traces; so the encoder's embedding and recurrence are written directly as ONNX nodes (Gather, then one LSTM / GRU
node per layer, both directions in one, the weights in ONNX's gate order) given each row's length as
`sequence_lens` (the mask's row sums), with which onnxruntime stops a row's recurrence at its last real token and
gives zeros on padding, as packing does; the traced bridge (the final states to the decoder's first, the attention
keys) is merged after them (onnx.compose).

The check (export.json "verification"): the exported folder decodes the run's test split (a seeded sample of at
most 2,000) greedily; every output sequence must equal ours, and the logits of every step, fed the same tokens in
lockstep with our model, within VALUE_TOLERANCE x max(1, max |logit|).
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


class _RNNBridge(nn.Module):
    """The RNN encoder's outputs -> the decoder's first state (as Seq2SeqRNN.start): (encoded (B, S, H), final h
    [and c] (layers * directions, B, H / directions)) -> memory, keys (with attention), h [and c] (B, layers, H).
    The recurrence before it is written as ONNX LSTM / GRU nodes (_recurrent_graph)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.names = ["memory", *(["keys"] if model.attention != "none" else []), "h", *(["c"] if model.lstm else [])]
        self.inputs = ["encoded", "final_h", *(["final_c"] if model.lstm else [])]

    def forward(self, encoded, *finals):
        m = self.model
        state = {"memory": encoded}
        for name, f in zip(("h", "c"), finals):
            f = f.view(m.layers, m.directions, *f.shape[1:]).permute(2, 0, 1, 3).flatten(2)
            state[name] = torch.tanh(m.bridge(f)) if name == "h" else m.bridge(f)
        if m.attention != "none":
            state["keys"] = m.key(encoded)
        return tuple(state[n] for n in self.names)


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
    if rnn:
        bridge = _RNNBridge(model).eval()
        _export(predictor, bridge, _bridge_example(model, bridge), folder / "bridge.onnx")
        encoder = _rnn_encoder(predictor, folder / "bridge.onnx", folder / "encoder.onnx", bridge.names)
    else:
        encoder = _export(predictor, _TransformerEncoder(model).eval(), examples["encoder"], folder / "encoder.onnx")
    decoder = _export(predictor, step_module, examples["decoder"], folder / "decoder.onnx")
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
                        + (" + ONNX LSTM / GRU nodes with sequence_lens (the encoder's recurrence)" if rnn else ""),
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


def _bridge_example(model, bridge) -> dict:
    """Example inputs of the RNN's bridge: encoded (batch 3, source 7, hidden), finals (layers * directions, 3, H/d)."""
    from torch.export import Dim

    hidden = model.bridge.in_features
    batch, source = Dim("batch", min=1, max=1 << 20), Dim("source", min=1, max=1 << 16)
    finals = [torch.randn(model.layers * model.directions, 3, hidden // model.directions) for _ in bridge.inputs[1:]]
    return {"args": (torch.randn(3, 7, hidden), *finals), "inputs": [{"name": n} for n in bridge.inputs],
            "shapes": ({0: batch, 1: source}, tuple({1: batch} for _ in finals)), "outputs": bridge.names}


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
    if "shape" in example["inputs"][0]:
        _check_dynamic(predictor, path, example["inputs"])
    return {"inputs": example["inputs"], "outputs": example["outputs"]}


def _rnn_encoder(predictor, bridge_path: Path, path: Path, outputs: list[str]) -> dict:
    """encoder.onnx of an RNN: the embedding and every encoder layer as ONNX nodes (_recurrent_graph), then the
    traced bridge (bridge_path, removed); its description."""
    import onnx
    from onnx import compose

    bridge = onnx.load(str(bridge_path))
    recurrent = _recurrent_graph(predictor.model, bridge)
    merged = compose.merge_models(recurrent, bridge, io_map=[(i.name, i.name) for i in bridge.graph.input])
    onnx.checker.check_model(merged)
    onnx.save(merged, str(path))
    bridge_path.unlink()
    inputs = [{"name": n, "dtype": "int64", "shape": ["batch", "source"]} for n in ("input_ids", "attention_mask")]
    return {"inputs": inputs, "outputs": outputs}


GATES = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}  # torch's gate blocks (i f g o / r z n) in ONNX's order (i o f c / z r h)


def _recurrent_graph(model, like):
    """input_ids, attention_mask -> encoded (batch, source, hidden), final_h [final_c] (layers * directions, batch,
    hidden / directions): torch's encoder (model.encoder, batch first) as ONNX LSTM / GRU nodes given each row's
    length (sequence_lens), which stop its recurrence at the row's last token, as packing does, and give zeros on
    padding. Weights are reordered to ONNX's gate order. `like`: the model whose opsets and IR version it takes."""
    from onnx import TensorProto, helper, numpy_helper

    rnn, lstm = model.encoder, model.lstm
    gates, order = (4 if lstm else 3), GATES["lstm" if lstm else "gru"]
    size, directions = rnn.hidden_size, model.directions

    def reorder(w):  # (gates * size, ...) -> the same blocks in ONNX's order
        blocks = w.detach().float().numpy().reshape(gates, size, *w.shape[1:])
        return blocks[order].reshape(gates * size, *w.shape[1:])

    init = [numpy_helper.from_array(model.source_embed.weight.detach().float().numpy(), "rnn_embedding"),
            numpy_helper.from_array(np.array([1], np.int64), "rnn_axis"),
            numpy_helper.from_array(np.array([0, 0, -1], np.int64), "rnn_merge_shape")]
    nodes = [helper.make_node("Gather", ["rnn_embedding", "input_ids"], ["rnn_embedded"]),
             helper.make_node("Transpose", ["rnn_embedded"], ["rnn_x0"], perm=[1, 0, 2]),  # (source, batch, embed)
             helper.make_node("ReduceSum", ["attention_mask", "rnn_axis"], ["rnn_lengths64"], keepdims=0),
             helper.make_node("Cast", ["rnn_lengths64"], ["rnn_lengths"], to=TensorProto.INT32)]
    finals = {"h": [], "c": []}
    x = "rnn_x0"
    for layer in range(model.layers):
        suffixes = ("", "_reverse")[:directions]
        W = np.stack([reorder(getattr(rnn, f"weight_ih_l{layer}{s}")) for s in suffixes])
        R = np.stack([reorder(getattr(rnn, f"weight_hh_l{layer}{s}")) for s in suffixes])
        B = np.stack([np.concatenate([reorder(getattr(rnn, f"bias_ih_l{layer}{s}")),
                                      reorder(getattr(rnn, f"bias_hh_l{layer}{s}"))]) for s in suffixes])
        names = [f"rnn_W{layer}", f"rnn_R{layer}", f"rnn_B{layer}"]
        init += [numpy_helper.from_array(a.astype(np.float32), n) for a, n in zip((W, R, B), names)]
        outs = [f"rnn_Y{layer}", f"rnn_h{layer}", *([f"rnn_c{layer}"] if lstm else [])]
        extra = {} if lstm else {"linear_before_reset": 1}  # torch's GRU applies r after the hidden's linear map
        nodes.append(helper.make_node("LSTM" if lstm else "GRU", [x, *names, "rnn_lengths"], outs, hidden_size=size,
                                      direction="bidirectional" if directions == 2 else "forward", **extra))
        # Y (source, directions, batch, size) -> (source, batch, directions * size): the directions' outputs joined
        nodes += [helper.make_node("Transpose", [outs[0]], [f"rnn_Yt{layer}"], perm=[0, 2, 1, 3]),
                  helper.make_node("Reshape", [f"rnn_Yt{layer}", "rnn_merge_shape"], [f"rnn_x{layer + 1}"])]
        x = f"rnn_x{layer + 1}"
        finals["h"].append(outs[1])
        if lstm:
            finals["c"].append(outs[2])
    nodes.append(helper.make_node("Transpose", [x], ["encoded"], perm=[1, 0, 2]))
    outputs = [helper.make_tensor_value_info("encoded", TensorProto.FLOAT, ["batch", "source", directions * size])]
    for name in ("h", "c")[: 2 if lstm else 1]:  # every layer's (directions, batch, size), layer after layer
        nodes.append(helper.make_node("Concat", finals[name], [f"final_{name}"], axis=0))
        outputs.append(helper.make_tensor_value_info(f"final_{name}", TensorProto.FLOAT,
                                                     [model.layers * directions, "batch", size]))
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "source"])
              for n in ("input_ids", "attention_mask")]
    graph = helper.make_graph(nodes, "encoder", inputs, outputs, init)
    return helper.make_model(graph, opset_imports=list(like.opset_import), ir_version=like.ir_version)


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
    same = np.array([a == b for a, b in zip(ours, theirs)])
    return SequenceComparison("values", np.concatenate(ours_logits), np.concatenate(their_logits),
                              {"compared_what": "logits of every greedy step", "decoding": "greedy",
                               "sequence_agreement": float(same.mean()) if len(same) else 1.0,
                               "sequences_differing": int((~same).sum())})
