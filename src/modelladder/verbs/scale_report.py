"""What `ladder scale` prints: the runs as a table, then the fitted law with its 95% intervals, the
compute-optimal size per budget, the prediction and the verification."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _interval(result: dict, name: str, fmt: str) -> str:
    interval = result.get("intervals", {}).get(name)
    return f" [{interval[0]:{fmt}}, {interval[1]:{fmt}}]" if interval else ""


def print_scale(root: Path, runs: pd.DataFrame, result: dict) -> None:
    table = pd.DataFrame({
        "budget": runs["budget"].map("{:.3g}".format), "size": runs["size"], "N": runs["n_params"],
        "D (tokens)": runs["tokens"], "steps": runs["steps"], "FLOPs": runs["flops"].map("{:.3g}".format),
        "loss": runs["loss"].map(lambda v: f"{v:.4f}" if pd.notna(v) else "-"),
        "seconds": runs["train_seconds"].map(lambda v: f"{v:.0f}" if pd.notna(v) else "-"),
    })
    print(table.to_string(index=False))
    for _, row in runs[runs["error"].notna()].iterrows():
        print(f"  {row['budget']:.3g} {row['size']}: {row['error']}")
    law = result.get("law")
    for warning in result.get("warnings", []):
        print(f"warning: {warning}")
    if law is None:
        print(f"{root}: no law fitted")
        return
    print(f"approach 3: L(N, D) = E + A/N^alpha + B/D^beta  (N non-embedding parameters, D tokens; "
          f"FLOPs/token = {result['flops_per_token']['formula']})")
    for name, fmt in (("E", ".4f"), ("alpha", ".3f"), ("beta", ".3f"), ("A", ".4g"), ("B", ".4g")):
        print(f"  {name:5} = {law[name]:{fmt}}{_interval(result, name, fmt)}")
    two = result["approach2"]
    print("approach 2: a parabola of the loss in log N per budget")
    for m in two["minima"]:
        found = f"N_opt = {m['n_opt']:,.0f}, loss {m['loss_opt']:.4f}" if m["n_opt"] is not None else m["why_none"]
        print(f"  C = {m['budget']:.3g}: {found}")
    if two["a"] is not None:
        print(f"  N_opt ~ C^{two['a']:.3f}{_interval(result, 'a', '.3f')}, "
              f"D_opt ~ C^{two['b']:.3f}{_interval(result, 'b', '.3f')}")
    print("compute-optimal (approach 3):")
    for opt in result["optimal"]:
        print(f"  C = {opt['budget']:.3g}: N = {opt['n']:,.0f}, D = {opt['d']:,.0f} tokens, loss {opt['loss']:.4f}")
    pred = result.get("prediction")
    if pred:
        interval = pred["loss_interval"]
        spread = f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else ""
        print(f"prediction at {pred['flops']:.3g} FLOPs: N_opt = {pred['n_opt']:,.0f}, D_opt = {pred['d_opt']:,.0f}, "
              f"loss {pred['loss']:.4f}{spread}")
    check = result.get("verify")
    if check:
        if check["loss"] is None:
            print(f"verify {check['size']} at {check['budget']:.3g}: failed: {check['error']}")
        else:
            print(f"verify {check['size']} (N = {check['n_params']:,}, D = {check['tokens']:,}): measured "
                  f"{check['loss']:.4f}, law {check['predicted_loss']:.4f}, relative error "
                  f"{100 * check['relative_error']:+.2f}%")
    print(f"{root}: scale.json, runs.csv, {', '.join(result.get('plots', []))}")
