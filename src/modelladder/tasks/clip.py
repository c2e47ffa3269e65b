"""CLIP-style contrastive learning on image-caption pairs (model clip, a caption dataset from data/captions.py).

Labels are (class, caption indices) rows (data/captions.py); the task holds the dataset's caption table as
token ids, made by the model's tokenizer (models/clip.py make_encoder: a word tokenizer trained on the
training captions, which trains identically every time, or MiniLM's own). Each training step pairs every
image of the batch with one of its captions drawn at random (from torch's default generator, which the loop
seeds and checkpoints); held-out batches take each image's first caption, so their loss is deterministic.

The loss is CLIP's symmetric InfoNCE: with logits[i, j] = scale * cos(image_i, text_j) over the batch,
(cross_entropy(logits, diag) + cross_entropy(logits.T, diag)) / 2, i.e. image -> text and text -> image
classification of the right partner among the batch, averaged. With synthetic captions a batch holds several
images of each class whose captions say the same thing, so the loss cannot fall below about log(images of a
class in the batch): read the recall and zero-shot figures, not the loss.

Evaluation (evaluate_model) embeds every image of the split and every distinct caption its images have:
- i2t_recall@k: the share of images with one of their own captions among the k captions nearest to them;
- t2i_recall@k: the share of captions whose image is among the k images nearest to them (with synthetic
  captions, which every image of a class shares, any image of the class counts);
- zero_shot_accuracy, where the dataset has classes: each image gets the class whose prompt
  ("a photo of the digit seven") is nearest;
with the chance level of each in the details, and pictures/ of retrieval examples.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modelladder.tasks.base import Task
from modelladder.tasks.reconstruction import first_per_class, generative_problems, pixel_stats, to_pixels

KS = (1, 5)  # the recall@k reported
QUERIES = 4  # retrieval examples drawn in each picture
CAPTION_DATASETS = ("coco_mini", "digits_captions", "mnist_captions")


class Clip(Task):
    target_dtype = torch.long  # labels: (class, caption indices) rows
    data_task = "clip"  # the caption datasets load their labels for this task only
    monitor = ("loss", "min")

    def __init__(self, captions: tuple[Tensor, Tensor], prompts: tuple[Tensor, Tensor] | None = None, *,
                 texts: Sequence[str] = (), mean: tuple[float, ...] = (0.0,), std: tuple[float, ...] = (1.0,),
                 synthetic: bool = False, encoder=None):
        self.ids, self.mask = captions  # the caption table's token ids (n, L) and mask, padded to the longest
        self.prompts, self.texts, self.mean, self.std = prompts, list(texts), mean, std
        self.synthetic, self.encoder = synthetic, encoder

    @classmethod
    def problems(cls, cfg, data) -> list[str]:
        if "captions" not in data.preprocess and data.kind == "image":
            return [f"task.name 'clip' needs images paired with captions: data.dataset must be one of "
                    f"{list(CAPTION_DATASETS)}, got '{cfg.data.dataset}'"]
        return generative_problems(cfg, data)

    @classmethod
    def from_config(cls, cfg, data) -> Clip:
        from modelladder.models.clip import CLIP

        texts, prompts = data.preprocess["captions"], data.preprocess["prompts"]
        # the scratch tokenizer learns its words from the training captions only
        encoder = CLIP.make_encoder(cfg.model, [texts[i] for i in np.unique(data.y_train[:, 1:])])
        mean, std = pixel_stats(data)
        return cls(token_table(encoder, texts), token_table(encoder, prompts) if prompts else None, texts=texts,
                   mean=mean, std=std, synthetic=bool(data.preprocess.get("synthetic_captions")), encoder=encoder)

    def captions(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """Token ids and mask of caption table `rows`, padded to the longest of them only."""
        ids, mask = self.ids.to(rows.device)[rows], self.mask.to(rows.device)[rows]
        length = int(mask.sum(dim=1).max())
        return ids[:, :length], mask[:, :length]

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if model.training:  # a random one of each image's captions
            column = torch.randint(y.shape[1] - 1, (len(y), 1), device=y.device)
        else:
            column = torch.zeros(len(y), 1, dtype=torch.long, device=y.device)
        ids, mask = self.captions(y[:, 1:].gather(1, column).squeeze(1))
        per_pair = symmetric_info_nce(model((x, ids, mask)))
        return per_pair.mean(), per_pair.detach()[:, None]

    def scores(self, outputs: Tensor) -> Tensor:
        return outputs.float()

    def metrics(self, y_true, scores: np.ndarray) -> dict[str, float]:
        return {"loss": float(np.asarray(scores, np.float64).mean())}

    def evaluate_model(self, model: nn.Module, X: np.ndarray, y: np.ndarray, run_dir: Path) -> tuple[dict, dict]:
        """The split's InfoNCE loss, retrieval recall@1/5 both ways, zero-shot accuracy, and pictures/."""
        from modelladder.train.loop import evaluate

        metrics = evaluate(model, self, X, y)
        images = embed_images(model, X)
        rows = np.unique(y[:, 1:])  # the split's distinct captions
        texts = embed_texts(model, self, torch.from_numpy(rows))
        match = torch.from_numpy((y[:, 1:, None] == rows[None, None, :]).any(axis=1))
        similarity = images @ texts.T
        metrics |= retrieval_recall(similarity, match)
        details = {"images": len(y), "captions": len(rows), "synthetic_captions": self.synthetic,
                   "chance": chance_recall(match)}
        if self.prompts is not None:
            prompts = embed_texts(model, self, None)
            metrics["zero_shot_accuracy"] = float(((images @ prompts.T).argmax(1).numpy() == y[:, 0]).mean())
            details["chance"]["zero_shot_accuracy"] = 1 / len(prompts)
        save_retrieval(self, X, y, rows, similarity, match, run_dir)
        if self.encoder is not None:
            self.encoder.save(Path(run_dir) / "tokenizer.json")
        return metrics, details


def token_table(encoder, texts: list[str]) -> tuple[Tensor, Tensor]:
    """Every text's token ids (n, L) and mask (n, L), padded to the longest."""
    from modelladder.data.batches import TokenSequences

    return TokenSequences(encoder.encode(texts), encoder.pad_id).take(torch.arange(len(texts)))


def symmetric_info_nce(logits: Tensor) -> Tensor:
    """Per pair i of a batch: (CE of image i over the texts + CE of text i over the images) / 2, where
    logits[i, j] scores image i against text j and pair i is (image i, text i). Its mean is CLIP's loss."""
    logits = logits.float()
    pairs = torch.arange(len(logits), device=logits.device)
    image_to_text = F.cross_entropy(logits, pairs, reduction="none")
    text_to_image = F.cross_entropy(logits.T, pairs, reduction="none")
    return (image_to_text + text_to_image) / 2


def retrieval_recall(similarity: Tensor, match: Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """i2t_recall@k and t2i_recall@k for a (N images, M texts) similarity and its (N, M) bool match matrix."""
    out = {}
    for k in ks:
        nearest_texts = similarity.topk(min(k, similarity.shape[1]), dim=1).indices
        nearest_images = similarity.topk(min(k, similarity.shape[0]), dim=0).indices
        out[f"i2t_recall@{k}"] = float(match.gather(1, nearest_texts).any(dim=1).double().mean())
        out[f"t2i_recall@{k}"] = float(match.gather(0, nearest_images).any(dim=0).double().mean())
    return out


def chance_recall(match: Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """The expected recall@k of a random ranking: 1 - C(n - m, k) / C(n, k) with m right answers of n."""
    def expected(rights: np.ndarray, n: int, k: int) -> float:
        misses = np.ones(len(rights))
        for j in range(min(k, n)):
            misses *= np.clip(n - rights - j, 0, None) / (n - j)
        return float((1 - misses).mean())

    m = match.numpy()
    return {**{f"i2t_recall@{k}": expected(m.sum(1), m.shape[1], k) for k in ks},
            **{f"t2i_recall@{k}": expected(m.sum(0), m.shape[0], k) for k in ks}}


@torch.no_grad()
def embed_images(model: nn.Module, X: np.ndarray, batch_size: int = 512) -> Tensor:
    """Unit-length embeddings (N, E) of images X, in eval mode (the model's mode is kept), on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [model.encode_image(torch.from_numpy(np.ascontiguousarray(X[i : i + batch_size])).float().to(device))
           .float().cpu() for i in range(0, len(X), batch_size)]
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def embed_texts(model: nn.Module, task: Clip, rows: Tensor | None, batch_size: int = 512) -> Tensor:
    """Unit-length embeddings of caption table `rows`, or of the zero-shot prompts when `rows` is None."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids, mask = task.prompts if rows is None else (task.ids[rows], task.mask[rows])
    out = []
    for i in range(0, len(ids), batch_size):
        part = mask[i : i + batch_size]
        length = int(part.sum(dim=1).max())
        out.append(model.encode_text(ids[i : i + batch_size, :length].to(device), part[:, :length].to(device))
                   .float().cpu())
    model.train(was_training)
    return torch.cat(out)


# ---------------------------------------------------------------- pictures


def save_retrieval(task: Clip, X: np.ndarray, y: np.ndarray, rows: np.ndarray, similarity: Tensor, match: Tensor,
                   run_dir: Path) -> list[Path]:
    """pictures/retrieval_image_to_text.png (query images and their 5 nearest captions) and
    pictures/retrieval_text_to_image.png (query captions and their 5 nearest images); right answers green."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    queries = first_per_class(y[:, 0], QUERIES)
    pixels = to_pixels(torch.from_numpy(np.ascontiguousarray(X)).float(), task.mean, task.std).numpy()
    kind = "synthetic captions" if task.synthetic else "human captions"
    top = min(5, len(rows))
    folder = Path(run_dir) / "pictures"
    folder.mkdir(parents=True, exist_ok=True)

    fig = Figure(figsize=(9, 1.7 * len(queries)), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(f"image -> text: the {top} nearest of {len(rows)} captions ({kind}; green = the image's own)",
                 fontsize=9)
    for r, (image_ax, text_ax) in enumerate(fig.subplots(len(queries), 2, width_ratios=[1, 5], squeeze=False)):
        i = int(queries[r])
        _show(image_ax, pixels[i])
        text_ax.axis("off")
        for rank, j in enumerate(similarity[i].topk(top).indices.tolist()):
            line = textwrap.shorten(task.texts[rows[j]], 95, placeholder="...")
            text_ax.text(0, 0.9 - 0.2 * rank, f"{rank + 1}. {line}", fontsize=8, va="center",
                         color="green" if match[i, j] else "firebrick", transform=text_ax.transAxes)
    paths = [_save(fig, folder / "retrieval_image_to_text.png")]

    fig = Figure(figsize=(9, 1.9 * len(queries)), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(f"text -> image: the {min(5, len(y))} nearest of {len(y)} images ({kind}; green = a right one)",
                 fontsize=9)
    for r, sub in enumerate(fig.subfigures(len(queries), 1, squeeze=False)[:, 0]):
        j = int(np.flatnonzero(rows == y[int(queries[r]), 1])[0])  # the query image's first caption
        sub.suptitle(textwrap.shorten(f"\"{task.texts[rows[j]]}\"", 110, placeholder="..."), fontsize=8)
        nearest = similarity[:, j].topk(min(5, len(y))).indices.tolist()
        for ax, i in zip(sub.subplots(1, 5, squeeze=False)[0], nearest + [None] * 5):
            if i is None:
                ax.axis("off")
                continue
            _show(ax, pixels[i], "green" if match[i, j] else "firebrick")
    paths.append(_save(fig, folder / "retrieval_text_to_image.png"))
    return paths


def _show(ax, image: np.ndarray, frame: str | None = None) -> None:
    """One (C, H, W) image in [0, 1] on `ax`, with a coloured frame when asked."""
    hwc = image.transpose(1, 2, 0)
    ax.imshow(hwc[..., 0] if hwc.shape[2] == 1 else hwc, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(frame is not None)
        if frame is not None:
            spine.set_color(frame)
            spine.set_linewidth(3)


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)
    return path
