"""The explanation pictures (matplotlib PNGs): on the left the attribution — a heat map over the image, a
bar per table column, or the text with each word shaded — and on the right the deletion and insertion
curves against the random orders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TOP_BARS = 12  # columns shown in a bar chart
POSITIVE, NEGATIVE = "#1a9850", "#d73027"


def _figure(width: float = 10.0, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg")  # no display here; only files are written
    import matplotlib.pyplot as plt

    return plt.subplots(1, 2, figsize=(width, height), gridspec_kw={"width_ratios": [1.6, 1]}, layout="constrained")


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def image_picture(path: Path, image: np.ndarray, heat: np.ndarray, *, signed: bool, title: str,
                  faith: dict) -> None:
    """`image` (H, W) or (H, W, 3) in [0, 1] with `heat` (H, W) on top."""
    import matplotlib as mpl

    fig, (left, right) = _figure()
    left.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
    top = float(np.abs(heat).max()) or 1.0
    colours = mpl.cm.ScalarMappable(mpl.colors.Normalize(-top if signed else 0, top), "bwr" if signed else "autumn")
    overlay = colours.to_rgba(heat)
    overlay[..., 3] = 0.9 * np.abs(heat) / top  # the image shows through where the attribution is small
    left.imshow(overlay)
    fig.colorbar(colours, ax=left, fraction=0.046)
    left.set_axis_off()
    left.set_title(title, fontsize=9)
    _curves(right, faith)
    _save(fig, path)


def bars_picture(path: Path, names: list[str], scores: np.ndarray, *, title: str, faith: dict | None,
                 xlabel: str = "attribution") -> None:
    """The TOP_BARS largest |scores| as horizontal bars, largest on top; curves on the right if `faith`."""
    if faith is None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, left = plt.subplots(figsize=(7, 4))
    else:
        fig, (left, right) = _figure()
        _curves(right, faith)
    order = np.argsort(-np.abs(scores), kind="stable")[:TOP_BARS][::-1]
    left.barh([names[i] for i in order], scores[order],
              color=[POSITIVE if scores[i] >= 0 else NEGATIVE for i in order])
    left.axvline(0, color="black", linewidth=0.8)
    left.set_xlabel(xlabel)
    left.set_title(title, fontsize=9)
    _save(fig, path)


def text_picture(path: Path, pieces: list[tuple[str, float | None]], *, title: str, faith: dict) -> None:
    """The text word by word, each word on a background green (for the class) or red (against)."""
    fig, (left, right) = _figure(11, 4)
    left.set_axis_off()
    left.set_title(title, fontsize=9)
    top = max((abs(s) for _, s in pieces if s is not None), default=0.0) or 1.0
    renderer = fig.canvas.get_renderer()
    x, y, line_height = 0.0, 0.95, 0.08
    width = left.get_window_extent(renderer).width
    for piece, score in pieces:
        if y < 0:  # a long text is cut where the panel ends
            left.text(x, y + line_height, " ...", fontsize=10, transform=left.transAxes)
            break
        box = None if score is None else {"facecolor": POSITIVE if score >= 0 else NEGATIVE,
                                          "alpha": 0.1 + 0.8 * abs(score) / top, "pad": 1, "edgecolor": "none"}
        text = left.text(x, y, piece, fontsize=10, transform=left.transAxes, va="top", bbox=box)
        advance = text.get_window_extent(renderer).width / width
        if x + advance > 1.0 and x > 0:
            text.set_position((0.0, y - line_height))
            x, y = 0.0, y - line_height
        x += advance
    _curves(right, faith)
    _save(fig, path)


def _curves(ax, faith: dict) -> None:
    fractions = faith["fractions"]
    ax.plot(fractions, faith["deletion"], color=NEGATIVE, label=f"deletion (AUC {faith['deletion_auc']:.3f})")
    ax.plot(fractions, faith["random_deletion"], color=NEGATIVE, linestyle=":",
            label=f"random deletion ({faith['random_deletion_auc']:.3f})")
    ax.plot(fractions, faith["insertion"], color=POSITIVE, label=f"insertion (AUC {faith['insertion_auc']:.3f})")
    ax.plot(fractions, faith["random_insertion"], color=POSITIVE, linestyle=":",
            label=f"random insertion ({faith['random_insertion_auc']:.3f})")
    ax.set_xlabel("fraction of units removed (deletion) / inserted (insertion)")
    ax.set_ylabel("probability of the explained class")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="best")
    ax.set_title("faithfulness", fontsize=9)
