"""Loss and metric curves of a run, written as CSV and PNG (matplotlib, Agg: no display needed).

Both are rendered in memory and written with ``core.atomic`` (a reader sees the old or the new file; a full disk
is ``DiskFullError`` naming the file)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segstudio.core.atomic import atomic_write_bytes

COLUMNS = ("epoch", "train_loss", "val_loss", "dice", "iou", "pixel_accuracy", "lr", "seconds")


def write_csv(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """One row per epoch: the fixed columns, then ``dice:<class>`` / ``iou:<class>`` per class."""
    extra = sorted({k for row in history for k in row if k not in COLUMNS})
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow([*COLUMNS, *extra])
    for row in history:
        w.writerow(["" if row.get(c) is None else row.get(c) for c in (*COLUMNS, *extra)])
    return atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def write_png(history: Sequence[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    ax_l, ax_m = fig.subplots(1, 2)
    ep = [r["epoch"] + 1 for r in history]

    def series(key: str) -> list[float]:
        return [math.nan if r.get(key) is None else float(r[key]) for r in history]

    ax_l.plot(ep, series("train_loss"), marker="o", label="train")
    if any(r.get("val_loss") is not None for r in history):
        ax_l.plot(ep, series("val_loss"), marker="o", label="validation")
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("loss")
    ax_l.legend()
    ax_l.grid(alpha=0.3)
    for key in ("dice", "iou"):
        ax_m.plot(ep, series(key), marker="o", label=f"mean {key}")
    for key in sorted(k for k in (history[-1] if history else {}) if k.startswith("dice:")):
        ax_m.plot(ep, series(key), linestyle="--", alpha=0.7, label=key)
    ax_m.set_xlabel("epoch")
    ax_m.set_ylabel("validation score")
    ax_m.set_ylim(0, 1)
    ax_m.legend(fontsize="small")
    ax_m.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())

