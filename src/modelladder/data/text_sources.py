"""The real text datasets: IMDB, SST-2 and rt-polarity (binary sentiment, classes 'neg' and 'pos').

Each is read from <data root>/<folder>/ and downloaded there, checked by sha256, when missing.
IMDB's canonical release is one .tar.gz of 100,000 small files: it is converted once, as a stream,
into gzipped JSON Lines (the layout of ../shared/data/imdb) in the writable cache
$MODELLADDER_CACHE/imdb, so nothing derived is ever written into the data folder.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from modelladder.data.bundle import DataBundle
from modelladder.data.download import content_sha256, data_root, ensure_files
from modelladder.data.text import decode_utf8, holdout_bundle, text_bundle
from modelladder.errors import InputError

if TYPE_CHECKING:
    from modelladder.config import DataConfig

SENTIMENT = ["neg", "pos"]

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# saved as .tgz: download() hashes the gunzipped content of a .gz name, this sha256 is of the archive bytes
IMDB_ARCHIVE = "aclImdb_v1.tgz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
IMDB_COUNTS = {"train": 25_000, "test": 25_000}
# aclImdb/train/neg/123_4.txt: review 123 of the train split, in folder neg, rated 4 out of 10
IMDB_MEMBER = re.compile(r"(?:\./)?aclImdb/(train|test)/(neg|pos|unsup)/(\d+)_(\d+)\.txt")
IMDB_LABELS = {"neg": 0, "pos": 1, "unsup": None}

SST2_URL = ("https://raw.githubusercontent.com/awake020/pytorch_Bert_sst2/"
            "54e22ca58a656750f474ec61ebccaf5ff596de96/SST-2/")
SST2_FILES = {  # the dev file is not read (see load_sst2)
    "sst2_train.tsv": (SST2_URL + "train.tsv", "e981ceb4fe6c9acd1c79851d0d091b9e78103f1f2a399ca83dda27915d41c56c"),
    "sst2_test.tsv": (SST2_URL + "test.tsv", "fcd46f967b7b8efd8b5398481dadf873886298d092195167af907fd532e81e1c"),
}
RT_URL = ("https://raw.githubusercontent.com/Shawn1993/cnn-text-classification-pytorch/"
          "555a0d9d2cf74b0322a3366da927cc0d61dda171/rt-polaritydata/")
RT_FILES = {  # negative first: the class order of SENTIMENT
    "rt-polarity.neg": (RT_URL + "rt-polarity.neg", "2d11cfbc790f1cd96d78339f41ce53ced1efa83cd22d37d6788fa3fe3d17e2fd"),
    "rt-polarity.pos": (RT_URL + "rt-polarity.pos", "4134882974a28d0c7b5151256f0e33a6169984ee7372c279e673f1114f475d58"),
}


def cache_root() -> Path:
    """$MODELLADDER_CACHE, else ~/.cache/modelladder: the writable home of derived files."""
    env = os.environ.get("MODELLADDER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "modelladder"


# ---------------------------------------------------------------- IMDB


def load_imdb(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    """IMDB movie reviews (Maas et al. 2011). The official split is kept: 25,000 training reviews
    (of which data.split.val go to validation) and 25,000 test reviews, half of each positive."""
    folder = imdb_folder(data_root(cfg.root) / "imdb")
    x_train, y_train = read_imdb(folder / "train.jsonl.gz", IMDB_COUNTS["train"])
    x_test, y_test = read_imdb(folder / "test.jsonl.gz", IMDB_COUNTS["test"])
    return text_bundle(x_train, y_train, x_test, y_test, classes=SENTIMENT, cfg=cfg, seed=seed, task=task,
                       source=f"imdb: {folder}")


def imdb_folder(folder: Path) -> Path:
    """The folder holding train.jsonl.gz and test.jsonl.gz: `folder` itself, else the cache, where
    they are converted from the canonical archive (downloaded into `folder` if missing) the first time."""
    cached = cache_root() / "imdb"
    for candidate in (folder, cached):
        if all((candidate / f"{split}.jsonl.gz").is_file() for split in IMDB_COUNTS):
            return candidate
    archive = ensure_files(folder, {IMDB_ARCHIVE: (IMDB_URL, IMDB_SHA256)}, "IMDB") / IMDB_ARCHIVE
    if content_sha256(archive, gzipped=False) != IMDB_SHA256:
        raise InputError(f"IMDB archive {archive} is not the canonical aclImdb_v1.tar.gz (sha256 mismatch); "
                         f"delete it to download it again from {IMDB_URL}")
    convert_imdb_archive(archive, cached)
    return cached


def convert_imdb_archive(archive: Path, dest: Path) -> None:
    """Write dest/{train,test,unsup}.jsonl.gz from the aclImdb .tar.gz, read as a stream.

    One record a review, {"id": "<n>_<rating>", "rating", "label": 0 (neg) | 1 (pos) | null (unsup),
    "text"}, sorted by (folder, n): neg first, then pos. Each file is written under a temporary name
    and renamed, train last, so a file present is complete and train present means all are.
    """
    splits = {"unsup": [], "test": [], "train": []}
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                match = IMDB_MEMBER.fullmatch(member.name)
                if match is None or not member.isfile():
                    continue
                split, folder, number, rating = match.groups()
                text = decode_utf8(tar.extractfile(member).read(), f"{archive}: {member.name}")
                splits["unsup" if folder == "unsup" else split].append((folder, int(number), int(rating), text))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise InputError(f"IMDB archive {archive} is not a readable .tar.gz file ({err}); "
                         "delete it to download it again") from None
    dest.mkdir(parents=True, exist_ok=True)
    for split, reviews in splits.items():
        records = ({"id": f"{n}_{r}", "rating": r, "label": IMDB_LABELS[folder], "text": text}
                   for folder, n, r, text in sorted(reviews))
        _write_jsonl_gz(dest / f"{split}.jsonl.gz", records)


def _write_jsonl_gz(path: Path, records) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_imdb(path: Path, expected: int) -> tuple[list[str], np.ndarray]:
    """(texts, labels) of one labelled split file, checked to hold `expected` reviews labelled 0 or 1."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"IMDB file {path} is not a complete gzip file ({err}); delete it to fetch it again") \
            from None
    texts, labels = [], []
    for number, line in enumerate(decode_utf8(raw, str(path)).split("\n"), 1):
        if not line:
            continue
        try:
            record = json.loads(line)
            texts.append(record["text"])
            labels.append(record["label"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise InputError(f"IMDB file {path} line {number} is not a review record with 'text' and 'label' "
                             f"({type(err).__name__}: {err})") from None
    found = sorted({repr(label) for label in labels})
    if len(texts) != expected or found != ["0", "1"]:
        raise InputError(f"IMDB file {path} holds {len(texts):,} reviews labelled {found}, expected {expected:,} "
                         "labelled 0 or 1: it is not the IMDB release; delete it to fetch it again")
    return texts, np.asarray(labels, np.int64)


# ---------------------------------------------------------------- SST-2 and rt-polarity


def load_sst2(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    """SST-2 (Socher et al. 2013; GLUE's binary version) from <data root>/sst/.

    Train: the 67,349 labelled phrases of sst2_train.tsv, of which data.split.val (or a CV fold) go
    to validation, as for every dataset. Test: the 1,821 sentences of sst2_test.tsv, which in this
    copy carry their labels (GLUE hides them). The official dev set (872 sentences) is therefore not
    used. Validation phrases can be parts of training sentences, so validation scores run high;
    the test sentences are disjoint from training. The PTB tokens -lrb- / -rrb- of the test file
    become ( and ), as the training file writes them.
    """
    folder = ensure_files(data_root(cfg.root) / "sst", SST2_FILES, "SST-2")
    x_train, y_train = read_sst2(folder / "sst2_train.tsv")
    x_test, y_test = read_sst2(folder / "sst2_test.tsv")
    return text_bundle(x_train, y_train, x_test, y_test, classes=SENTIMENT, cfg=cfg, seed=seed, task=task,
                       source=f"sst2: {folder}")


def read_sst2(path: Path) -> tuple[list[str], list[int]]:
    """(texts, labels) of an SST-2 file: a header line, then '<0 or 1><TAB><text>' lines (CRLF or LF)."""
    lines = decode_utf8(path.read_bytes(), str(path)).split("\n")
    if not lines[0].startswith("label\t"):
        raise InputError(f"{path} line 1 must be the header 'label<TAB>sentence', got {lines[0][:60]!r}")
    texts, labels = [], []
    for number, line in enumerate(lines[1:], 2):
        line = line.rstrip("\r")
        if not line:
            continue
        label, tab, text = line.partition("\t")
        if not tab or label not in ("0", "1"):
            raise InputError(f"{path} line {number} must be '0 or 1<TAB>text', got {line[:60]!r}")
        texts.append(text.replace("-lrb-", "(").replace("-rrb-", ")"))
        labels.append(int(label))
    return texts, labels


def load_rt_polarity(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    """Pang & Lee's sentence polarity v1.0 (rt-polarity, "MR"): 5,331 negative and 5,331 positive
    snippets, one a line, from <data root>/rt_polarity/. There is no official split:
    data.split.test of the snippets (stratified, seeded) is the test split."""
    folder = ensure_files(data_root(cfg.root) / "rt_polarity", RT_FILES, "rt-polarity")
    texts, labels = [], []
    for label, name in enumerate(RT_FILES):
        lines = decode_utf8((folder / name).read_bytes(), str(folder / name)).split("\n")
        lines = lines[:-1] if lines[-1] == "" else lines  # the newline that ends the last line
        texts += lines
        labels += [label] * len(lines)
    return holdout_bundle(texts, labels, classes=SENTIMENT, cfg=cfg, seed=seed, task=task,
                          source=f"rt_polarity: {folder}")
