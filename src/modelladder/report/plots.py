"""The report's plots, each drawn with matplotlib's Agg canvas and returned as a PNG data URI.

No pyplot: every figure is a plain `Figure` on its own Agg canvas, so drawing a report touches no
global backend state and needs no display.
"""

from __future__ import annotations

import base64
import io
import itertools

import numpy as np

DPI = 90
# metrics.jsonl keys that are bookkeeping or a loss, not a validation metric to plot by epoch
NOT_METRICS = {"epoch", "step", "split", "lr", "samples_per_s", "loss", "log_loss"}


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg backend, chosen here and for this figure only
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def learning_curves(records: list[dict]) -> str | None:
    """Train (and validation) loss by step on the left, validation metrics by epoch on the right."""
    train = [r for r in records if r.get("split") == "train" and "loss" in r]
    val = [r for r in records if r.get("split") == "val"]
    if not train and not val:
        return None
    fig, (loss_ax, metric_ax) = _figure(9, 3.4, ncols=2)
    if train:
        loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss")
    if any("loss" in r for r in val):
        loss_ax.plot([r["step"] for r in val if "loss" in r], [r["loss"] for r in val if "loss" in r],
                     marker="o", markersize=3, label="val loss")
    loss_ax.set(xlabel="step", ylabel="loss", title="loss")
    loss_ax.legend()
    names = [k for k in val[0] if k not in NOT_METRICS and isinstance(val[0][k], (int, float))] if val else []
    for name in names:
        epochs = [r["epoch"] for r in val if name in r]
        metric_ax.plot(epochs, [r[name] for r in val if name in r], marker="o", markersize=3, label=name)
    metric_ax.set(xlabel="epoch", title="validation metrics")
    if names:
        metric_ax.legend(fontsize="small")
    else:
        metric_ax.text(0.5, 0.5, "no validation split", ha="center", va="center", transform=metric_ax.transAxes)
    return data_uri(fig)


def fold_learning_curves(records_by_fold: dict[str, list[dict]]) -> str | None:
    """Train loss by step and the first validation metric by epoch, one line per fold."""
    if not any(records_by_fold.values()):
        return None
    fig, (loss_ax, metric_ax) = _figure(9, 3.4, ncols=2)
    metric = None
    for fold, records in records_by_fold.items():
        train = [r for r in records if r.get("split") == "train" and "loss" in r]
        val = [r for r in records if r.get("split") == "val"]
        if train:
            loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], label=fold, linewidth=1)
        metric = metric or next((k for r in val for k in r if k not in NOT_METRICS
                                 and isinstance(r[k], (int, float))), None)
        if metric:
            metric_ax.plot([r["epoch"] for r in val if metric in r], [r[metric] for r in val if metric in r],
                           marker="o", markersize=3, label=fold)
    loss_ax.set(xlabel="step", ylabel="train loss", title="train loss")
    metric_ax.set(xlabel="epoch", title=f"validation {metric}" if metric else "no validation metrics")
    for ax in (loss_ax, metric_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return data_uri(fig)


def confusion_matrix(matrix: list[list[int]], classes: list[str]) -> str:
    counts = np.asarray(matrix)
    size = min(3 + 0.3 * len(classes), 10)
    fig, (ax,) = _figure(size + 1, size)
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = range(len(classes))
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="true", title="confusion matrix")
    ax.set_xticklabels(classes, rotation=90 if len(classes) > 12 else 0)
    ax.set_yticklabels(classes)
    if len(classes) <= 20:  # numbers in the cells stay readable up to about 20 classes
        threshold = counts.max() / 2 if counts.size else 0
        for (i, j), value in np.ndenumerate(counts):
            ax.text(j, i, str(value), ha="center", va="center", fontsize="small",
                    color="white" if value > threshold else "black")
    return data_uri(fig)


def roc_curves(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> str | None:
    """One-vs-rest ROC curve per class present in `y_true`; for two classes, one curve for the second."""
    from sklearn.metrics import auc, roc_curve

    y_true = np.asarray(y_true)
    targets = [1] if len(classes) == 2 else range(len(classes))
    curves = []
    for k in targets:
        positive = y_true == classes[k]
        if positive.all() or not positive.any():
            continue  # the curve is undefined without both positives and negatives
        fpr, tpr, _ = roc_curve(positive, proba[:, k])
        curves.append((classes[k], fpr, tpr))
    if not curves:
        return None
    fig, (ax,) = _figure(5, 4.2)
    for name, fpr, tpr in curves:
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    title = f"ROC, positive class {curves[0][0]}" if len(classes) == 2 else "ROC, one vs rest"
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(fontsize="x-small", loc="lower right")
    return data_uri(fig)


def predicted_vs_true(y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """A regression rung's predictions against the truth, with the y = x line a perfect model lies on (left), and
    its residuals (predicted - true) against the prediction, around 0 (right): a trend or a funnel there is
    what the model misses."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    fig, (ax, res_ax) = _figure(8.5, 3.8, ncols=2)
    ax.scatter(y_true, y_pred, s=8, alpha=0.5)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8, label="y = x")
    ax.set(xlabel="true", ylabel="predicted", title="predicted vs true")
    ax.legend()
    res_ax.scatter(y_pred, y_pred - y_true, s=8, alpha=0.5)
    res_ax.axhline(0.0, linestyle="--", color="grey", linewidth=0.8)
    res_ax.set(xlabel="predicted", ylabel="residual (predicted - true)", title="residuals")
    return data_uri(fig)


# axis labels with units for the costs beyond the frontier's (report/pareto.py FRONTIER_COSTS has those)
COST_AXIS = {"flops_train": "training FLOPs (count)", "cpu_s": "CPU time of training (s)",
             "peak_mem_mb": "peak memory (MiB)", "peak_gpu_mem_mb": "peak GPU memory (MiB)",
             "energy_cpu_kwh": "measured CPU energy (kWh)", "energy_modelled_kwh": "modelled energy (kWh)",
             "co2_kg": "CO2 (kg)", "latency_ms_p95": "latency p95 (ms per example, batch 1)",
             "nodes": "tree nodes (count)"}


def metric_vs_cost(names: list[str], costs: list[float], values: list[float], cost: str, metric: str) -> str:
    """One point per rung, cost on a log x axis (symmetric-log when a cost is 0); labels placed as on the
    frontier plots, clear of each other and of the points."""
    from adjustText import adjust_text

    fig, (ax,) = _figure(4, 3.2)
    ax.scatter(costs, values)
    _cost_axis(ax, costs)
    ax.set(xlabel=f"{COST_AXIS.get(cost, cost)}, log scale", ylabel=metric, title=f"{metric} vs {cost}")
    ax.margins(y=0.15)
    fig.canvas.draw()  # lay the figure out once, then keep it fixed while the labels find their places
    fig.set_layout_engine("none")
    texts = [ax.text(x, y, name, fontsize="small") for name, x, y in zip(names, costs, values)]
    crowded = _place_labels(fig, ax, texts, costs, values, [None] * len(names), [], [])
    if crowded:
        placed = [t for t in texts if t not in crowded]
        adjust_text(crowded, x=list(costs), y=list(values), objects=placed or None, ax=ax,
                    arrowprops={"arrowstyle": "-", "color": "#8c959f", "lw": 0.6})
    return data_uri(fig)


FRONTIER_COLOR, DOMINATED_COLOR = "#0969da", "#afb8c1"


def frontier_figure(points: dict, metric_label: str) -> str:
    """The headline metric against one cost (log x axis): frontier rungs in colour joined by a dashed line,
    dominated rungs grey, 95% intervals as error bars, labels moved apart by adjustText."""
    fig, _ = frontier_drawing(points, metric_label)
    return data_uri(fig)


def frontier_drawing(points: dict, metric_label: str):
    """frontier_figure's figure and its rung labels (for a test to check that they do not overlap)."""
    from adjustText import adjust_text

    fig, (ax,) = _figure(5.4, 4.0)
    names, costs, values = points["names"], points["costs"], points["values"]
    bars = []  # the error bars, which labels must not cross
    for x, y, interval, best in zip(costs, values, points["intervals"], points["frontier"]):
        color = FRONTIER_COLOR if best else DOMINATED_COLOR
        yerr = None if interval is None else [[max(y - interval[0], 0.0)], [max(interval[1] - y, 0.0)]]
        ax.errorbar([x], [y], yerr=yerr, fmt="o", color=color, ecolor=color, capsize=3, markersize=6,
                    zorder=3 if best else 2)
        if interval is not None:
            bars.append((x, interval))
    front = sorted((x, y) for x, y, best in zip(costs, values, points["frontier"]) if best)
    if len(front) > 1:
        ax.plot(*zip(*front), linestyle="--", color=FRONTIER_COLOR, linewidth=1, zorder=1)
    _cost_axis(ax, costs)
    ax.set(xlabel=f"{points['cost_label']}, log scale", ylabel=metric_label)
    ax.margins(y=0.2)
    ax.plot([], [], "o", color=FRONTIER_COLOR, label="on the frontier")
    ax.plot([], [], "o", color=DOMINATED_COLOR, label="dominated")
    ax.legend(fontsize="small", loc="best")
    fig.canvas.draw()  # lay the figure out once, then keep it fixed while the labels move
    fig.set_layout_engine("none")
    texts = [ax.text(x, y, name, fontsize=9, color="#1f2328" if best else "#6e7781")
             for name, x, y, best in zip(names, costs, values, points["frontier"])]
    crowded = _place_labels(fig, ax, texts, costs, values, points["intervals"], bars, front)
    if crowded:  # no free spot near these points: adjustText pushes them apart, with a leader line
        avoid_x, avoid_y = _drawn_points(ax, costs, values, points["intervals"], front)
        placed = [t for t in texts if t not in crowded]
        adjust_text(crowded, x=avoid_x, y=avoid_y, objects=placed or None, ax=ax, expand=(1.2, 1.4),
                    force_static=(0.4, 0.6), arrowprops={"arrowstyle": "-", "color": "#8c959f", "lw": 0.6})
    return fig, texts


# label positions tried around a point, in pixels from it: right, left, then further up and down
OFFSETS = [(7, 3), (7, -15), (-7, 3), (-7, -15), (7, 14), (7, -26), (-7, 14), (-7, -26), (0, 18), (0, -30),
           (7, 28), (7, -40), (-7, 28), (-7, -40)]


def _place_labels(fig, ax, texts, costs, values, intervals, bars, front) -> list:
    """Put each label at the first offset around its point where it overlaps no other label, marker, error bar,
    frontier line or the legend and stays inside the axes; return the labels that found no such spot."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    data = ax.transData
    marks = data.transform(np.c_[costs, values])
    blocked = [Bbox.from_extents(x - 5, y - 5, x + 5, y + 5) for x, y in marks]
    for x, (low, high) in bars:
        (x0, y0), (_, y1) = data.transform([(x, low), (x, high)])
        blocked.append(Bbox.from_extents(x0 - 4, y0 - 2, x0 + 4, y1 + 2))
    legend = ax.get_legend()
    if legend is not None:
        blocked.append(legend.get_window_extent(renderer))
    line = _line_pixels(data, front)
    inside = ax.get_window_extent(renderer)
    crowded = []
    for text, (px, py), x, interval in zip(texts, marks, costs, intervals):
        extent = text.get_window_extent(renderer)
        width, height = extent.width, extent.height
        corners = [(px + dx if dx >= 0 else px + dx - width, py + dy) for dx, dy in OFFSETS]
        if interval is not None:  # centred just above the error bar's top, or below its bottom
            (_, top), (_, bottom) = data.transform([(x, interval[1]), (x, interval[0])])
            corners += [(px - width / 2, top + 4), (px - width / 2, bottom - 4 - height)]
        for left, low in corners:
            box = Bbox.from_extents(left, low, left + width, low + height)
            if (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
                    and not any(box.overlaps(b) for b in blocked) and not _crosses(box, line)):
                text.set_position(data.inverted().transform((box.x0, box.y0)))
                text.set(ha="left", va="bottom")
                blocked.append(box)
                break
        else:
            crowded.append(text)
    return crowded


def _line_pixels(data, front) -> np.ndarray:
    """Points every pixel or so along the frontier's dashed line, in display coordinates."""
    pixels = data.transform(front) if front else np.empty((0, 2))
    pieces = [np.linspace(a, b, max(2, int(np.hypot(*(b - a))))) for a, b in itertools.pairwise(pixels)]
    return np.concatenate(pieces) if pieces else np.empty((0, 2))


def _crosses(box, line: np.ndarray) -> bool:
    return bool(len(line)) and bool(np.any((line[:, 0] >= box.x0) & (line[:, 0] <= box.x1)
                                           & (line[:, 1] >= box.y0) & (line[:, 1] <= box.y1)))


def _drawn_points(ax, costs, values, intervals, front) -> tuple[list[float], list[float]]:
    """Points along the markers, error bars and the frontier line, for adjustText to keep labels off them."""
    xs, ys = list(costs), list(values)
    for x, interval in zip(costs, intervals):
        if interval is not None:
            steps = np.linspace(interval[0], interval[1], 40)
            xs += [x] * len(steps)
            ys += list(steps)
    log = ax.get_xscale() == "log"
    for (x0, y0), (x1, y1) in itertools.pairwise(front):
        t = np.linspace(0, 1, 25)
        xs += list(np.exp(np.log(x0) + t * (np.log(x1) - np.log(x0))) if log and x0 > 0 else x0 + t * (x1 - x0))
        ys += list(y0 + t * (y1 - y0))
    return xs, ys


def _cost_axis(ax, costs: list[float]) -> None:
    """Log x axis reaching the powers of ten around the points; symmetric-log when a cost is 0."""
    from matplotlib.ticker import NullFormatter

    positive = [c for c in costs if c > 0]
    if len(positive) == len(costs):
        ax.set_xscale("log")
        low, high = min(costs), max(costs)
        # room right of the costliest point for its label
        ax.set_xlim(min(low / 2, 10 ** np.floor(np.log10(low))), max(high * 8, 10 ** np.ceil(np.log10(high))))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_xscale("symlog", linthresh=min(positive, default=1.0))
        ax.margins(x=0.15)


def predicted_vs_true_grid(panels: list[dict]) -> str:
    """One predicted-vs-true scatter per regression rung on shared axes, the y = x line in each, RMSE and R^2
    in the title: which rung follows the truth, and where each one misses."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(3.0 * ncols, 3.1 * nrows + 0.2), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    values = np.concatenate([np.r_[p["true"], p["predicted"]] for p in panels])
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    for ax, panel in zip(axes.flat, panels):
        ax.scatter(panel["true"], panel["predicted"], s=6, alpha=0.5, color=FRONTIER_COLOR)
        ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=0.8)
        scores = [f"RMSE {panel['rmse']:.4g}" if panel.get("rmse") is not None else "",
                  f"R² {panel['r2']:.3f}" if panel.get("r2") is not None else ""]
        ax.set_title(f"{panel['name']}\n{', '.join(s for s in scores if s)}", fontsize="medium")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for i, ax in enumerate(axes.flat[: len(panels)]):
        if i + ncols >= len(panels):
            ax.set_xlabel("true", fontsize="small")
            ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("predicted", fontsize="small")
    return data_uri(fig)


def reliability_grid(panels: list[dict]) -> str:
    """One reliability diagram per classifier rung: accuracy per confidence bin against the diagonal, the gap
    to it hatched, ECE in the title."""
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.0 * ncols, 3.1 * nrows + 0.2), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(wspace=0.06)  # room between one panel's "1.0" and the next one's "0.0"
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    for ax, panel in zip(axes.flat, panels):
        rel = panel["reliability"]
        edges = rel["edges"]
        centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
        filled = rel["counts"] > 0
        ax.bar(centers[filled], rel["accuracy"][filled], width=width, color=FRONTIER_COLOR, edgecolor="white",
               label="accuracy")
        gap_low = np.minimum(rel["accuracy"], rel["confidence"])[filled]
        ax.bar(centers[filled], np.abs(rel["accuracy"] - rel["confidence"])[filled], bottom=gap_low, width=width,
               color="none", edgecolor="#cf222e", hatch="///", linewidth=0.5, label="gap to confidence")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        ax.set_title(f"{panel['name']}\nECE {panel['ece']:.3f}{panel.get('suffix', '')}", fontsize="medium")
        ax.set(xlim=(0, 1), ylim=(0, 1))
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for i, ax in enumerate(axes.flat[: len(panels)]):
        if i + ncols >= len(panels):  # the lowest panel of its column
            ax.set_xlabel("confidence (top-class probability)", fontsize="small")
            ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy", fontsize="small")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize="small")
    return data_uri(fig)


def attention_maps(examples: list[dict]) -> str:
    """A seq2seq rung's attention (tasks/seq2seq.py attention.json) for up to four sources: one heat map each,
    output symbols down, source tokens across."""
    examples = examples[:4]
    fig, axes = _figure(3.2 * len(examples), 3.4, ncols=len(examples))
    for ax, example in zip(axes, examples):
        ax.imshow(np.asarray(example["weights"], dtype=np.float64), cmap="Greys", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(example["source_tokens"])))
        ax.set_xticklabels(example["source_tokens"], fontsize="small")
        ax.set_yticks(range(len(example["output"])))
        ax.set_yticklabels(example["output"], fontsize="small")
        ax.set_title(example["source"], fontsize="small")
    return data_uri(fig)
