"""Reports of training runs: one self-contained HTML file (inline SVG curves, base64 PNG overlays, no script),
with the same figures as CSV (the comparison table) and JSON (everything) beside it.

Per run: its config, training time and device, curves per epoch (``curves.csv``), the per-class table of its
best checkpoint on its validation split and the worst-k gallery (lowest mean Dice). The checkpoint is scored by
``engine.evaluate`` (``predict`` + ``iter_evaluation``, what ``segstudio evaluate CKPT DATASET --split val``
runs), so the report's figures are that command's figures. Several runs add a comparison table in the style of
published papers' tables, the best value of each column in bold.

    for ev in build_report([Path("runs/a"), Path("runs/b")], worst=6):
        ...  # ReportRunStarted, SampleEvaluated, Report (last)
    write_report(report, Path("report.html"))   # + report.csv, report.json

This module is longer than most: the collection and its one rendering are read together, and splitting the HTML
out would leave two halves that only make sense side by side.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import segstudio
from segstudio.core.atomic import atomic_write_json, atomic_write_text
from segstudio.core.errors import SegstudioError
from segstudio.datasets.base import Dataset
from segstudio.engine.cancel import CancelToken
from segstudio.engine.evaluate import (
    Evaluation,
    SampleEvaluated,
    Unreadable,
    check_classes,
    iter_evaluation,
    select_samples,
)
from segstudio.engine.rundir import CONFIG_NAME, RUN_MARKERS, holds_run
from segstudio.workspace.models import run_checkpoint

log = logging.getLogger(__name__)

#: height in pixels of one gallery panel (GT or prediction)
PANEL_PX = 240


class ReportError(SegstudioError):
    """A run cannot be reported on. Rendered on one line: what, the file, the fix."""

    def _render(self) -> str:
        parts = [self.message.rstrip(".") + "."]
        if self.path is not None:
            parts.append(f"File: {str(self.path).encode('utf-8', 'backslashreplace').decode('utf-8')}.")
        if self.fix:
            parts.append(f"Fix: {self.fix}")
        return " ".join(parts)


@dataclass(frozen=True, kw_only=True)
class ReportRunStarted:
    """Progress: run ``index`` (0-based) of ``total`` is being scored on ``samples`` validation images."""

    name: str
    index: int
    total: int
    samples: int


@dataclass(frozen=True, kw_only=True)
class GalleryItem:
    sample_id: str
    dice: float
    per_class: tuple[tuple[str, float], ...]
    png: bytes


@dataclass(frozen=True, kw_only=True)
class RunReport:
    name: str
    folder: Path
    checkpoint: Path
    dataset: str
    config: dict[str, Any]
    run_info: dict[str, Any]
    curves: tuple[dict[str, float | None], ...]
    evaluation: Evaluation
    gallery: tuple[GalleryItem, ...]
    colours: tuple[tuple[str, tuple[int, int, int]], ...]
    eval_seconds: float

    def per_class(self, key: str) -> dict[str, float]:
        """Scored classes' figure ``key`` (dice, iou, precision, recall) by class name."""
        scored = set(self.evaluation.summary.scored_ids)
        return {c.name: float(getattr(c, key)) for c in self.evaluation.summary.per_class if c.class_id in scored}


@dataclass(frozen=True, kw_only=True)
class Report:
    runs: tuple[RunReport, ...]
    created: str


# reading runs ------------------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ReportError(f"The run file cannot be read ({e})", path=path,
                          fix="Restore it from the run's checkpoint (its config.json holds the same config).") from None
    return doc if isinstance(doc, dict) else {}


def find_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a report scores: ``best``, else ``swa``, else ``last``; a :class:`ReportError` otherwise."""
    if not run_dir.is_dir() or not holds_run(run_dir):
        raise ReportError(f"{run_dir} is not a run folder (none of {', '.join(RUN_MARKERS)} in it)", path=run_dir,
                          fix="Give the folder that `segstudio train DATASET --out RUN_DIR` wrote.")
    found = run_checkpoint(run_dir)
    if found is not None:
        return found
    raise ReportError(f"The run {run_dir} has no checkpoint (checkpoints/best or checkpoints/last)",
                      path=run_dir / "checkpoints",
                      fix=f"Let it finish an epoch: segstudio train DATASET --out {run_dir} --resume.")


def recorded_dataset(run_dir: Path) -> str | None:
    """The dataset a run was trained on, where the run says: ``dataset`` in ``run.json`` or
    ``train_config.json``, or the dataset of the workspace that holds the run (``<workspace>/runs/<id>``)."""
    for name in ("run.json", CONFIG_NAME):
        value = _read_json(run_dir / name).get("dataset")
        if isinstance(value, str) and value:
            return value
    if run_dir.parent.name == "runs":
        from segstudio.workspace.locate import workspace_settings_at

        try:
            settings = workspace_settings_at(run_dir.parent.parent)
        except SegstudioError:
            settings = None
        if settings is not None and settings.dataset_root:
            return settings.dataset_root
    return None


def run_names(folders: Sequence[Path]) -> list[str]:
    """Short, distinct names: the folder name, with parent folders added until the names differ."""
    parts = [Path(f).resolve().parts for f in folders]
    for depth in range(1, max((len(p) for p in parts), default=1) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(f) for f in folders]


def _curves(path: Path) -> tuple[dict[str, float | None], ...]:
    if not path.is_file():
        return ()

    def num(v: str | None) -> float | None:
        try:
            x = float(v) if v not in (None, "") else None
        except ValueError:
            return None
        return None if x is None or math.isnan(x) else x

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return tuple({k: num(v) for k, v in row.items() if k} for row in csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ReportError(f"The run's curves cannot be read ({e})", path=path,
                          fix="Delete curves.csv to report the run without curves.") from None


# scoring -----------------------------------------------------------------------------------------------------
def _sort_key(dice: float) -> float:
    return math.inf if math.isnan(dice) else dice


def _score_run(dataset: Dataset, predictor: Any, *, name: str, index: int, total: int, worst: int,
               cancel: CancelToken | None) -> Iterator[Any]:
    """Predict and score the checkpoint's validation split, keeping the ``worst`` lowest-Dice predictions;
    yields progress, then ``(Evaluation, [(dice, sample id, mask)])``."""
    from segstudio.engine.infer import Prediction, predict

    check_classes(dataset, predictor.schema)
    chosen = select_samples(dataset, "val", checkpoint=predictor.members[0].checkpoint)
    yield ReportRunStarted(name=name, index=index, total=total, samples=len(chosen))
    pending: dict[str, np.ndarray] = {}
    kept: list[tuple[float, str, np.ndarray]] = []

    def pairs() -> Iterator[tuple[str, np.ndarray | Unreadable | None]]:
        for r in predict(dataset, predictor, samples=chosen, cancel=cancel):
            if isinstance(r, Prediction):
                pending[r.sample_id] = r.mask
                yield r.sample_id, r.mask
            else:
                yield r.sample_id, Unreadable(message=r.message)

    src = " + ".join(str(p) for p in predictor.checkpoint_paths)
    result: Evaluation | None = None
    for ev in iter_evaluation(dataset, pairs(), total=len(chosen), cancel=cancel, source=src, split="val"):
        if isinstance(ev, SampleEvaluated):
            sid = ev.comparison.sample_id or ""
            if worst > 0 and sid in pending:
                kept.append((ev.comparison.mean_dice, sid, pending[sid]))
                kept.sort(key=lambda t: (_sort_key(t[0]), t[1]))
                del kept[worst:]
            pending.clear()  # only the sample just scored is pending; skipped ones are dropped with it
            yield ev
        elif isinstance(ev, Evaluation):
            result = ev
    assert result is not None
    yield result, kept


def build_report(run_dirs: Sequence[str | Path], *, dataset: str | Dataset | None = None, format: str | None = None,
                 worst: int = 6, device: str = "auto", cancel: CancelToken | None = None) -> Iterator[Any]:
    """Score every run's checkpoint on its validation split; yield :class:`ReportRunStarted` and
    ``SampleEvaluated`` as it goes and the :class:`Report` last. ``dataset`` (a path, or a dataset already open,
    as in the app) overrides what the runs record. Every run is checked (folder, checkpoint, dataset) before the
    first is scored."""
    from segstudio.datasets.registry import open_dataset
    from segstudio.engine.predictor import Predictor, recommended_options

    folders = [Path(r).expanduser() for r in run_dirs]
    checkpoints = [find_checkpoint(f) for f in folders]
    sources: list[str] = []
    opened: dict[str, Dataset] = {}
    if isinstance(dataset, Dataset):
        opened[str(dataset.root)] = dataset
        sources = [str(dataset.root)] * len(folders)
    given = dataset if isinstance(dataset, str) else None
    for f in folders if not opened else ():
        src = given or recorded_dataset(f)
        if src is None:
            raise ReportError(f"The run {f} does not record the dataset it was trained on", path=f,
                              fix="Name it: segstudio report RUN... --dataset DATASET.")
        if not Path(src).expanduser().exists():
            how = "given with --dataset" if given else "recorded by the run"
            raise ReportError(f"The dataset {how} is not there", path=src,
                              fix="Give its current place with --dataset DATASET.")
        sources.append(src)
    for src in dict.fromkeys(sources):
        if src in opened:
            continue
        try:
            opened[src] = open_dataset(src, format=format)
        except SegstudioError as e:
            raise ReportError(f"The dataset cannot be opened: {e.message}", path=e.path or src,
                              fix=e.fix or "Give a dataset folder with --dataset DATASET.") from None
    names = run_names(folders)
    runs: list[RunReport] = []
    for k, (folder, ckpt, src, name) in enumerate(zip(folders, checkpoints, sources, names, strict=True)):
        ds = opened[src]
        predictor = Predictor.load([ckpt], options=recommended_options(ckpt, device=device, uncertainty=False))
        t0 = time.perf_counter()
        result: Evaluation | None = None
        kept: list[tuple[float, str, np.ndarray]] = []
        for ev in _score_run(ds, predictor, name=name, index=k, total=len(folders), worst=worst, cancel=cancel):
            if isinstance(ev, tuple):
                result, kept = ev
            else:
                yield ev
        assert result is not None
        secs = time.perf_counter() - t0
        log.info("report: %s scored on %d image(s) in %.1f s: dice %.4f", name, len(result.samples), secs, result.dice)
        config = _read_json(folder / CONFIG_NAME) or dict(predictor.members[0].checkpoint.config.to_dict())
        gallery = tuple(_gallery_item(ds, sid, mask, dice, result) for dice, sid, mask in kept)
        runs.append(RunReport(
            name=name, folder=folder, checkpoint=ckpt, dataset=str(ds.root), config=config,
            run_info=_read_json(folder / "run.json"), curves=_curves(folder / "curves.csv"), evaluation=result,
            gallery=gallery, colours=tuple((c.name, c.colour) for c in ds.schema if c.id in result.summary.scored_ids),
            eval_seconds=secs))
    yield Report(runs=tuple(runs), created=time.strftime("%Y-%m-%d %H:%M:%S %Z"))


# gallery -----------------------------------------------------------------------------------------------------
def overlay(image: np.ndarray, mask: np.ndarray, *, schema: Any, class_ids: Sequence[int], height: int = PANEL_PX) -> np.ndarray:
    """``(h, w, 3) uint8`` BGR: ``image`` (any depth, grey or RGB) scaled to ``height``, each class of ``class_ids``
    as a translucent fill with a solid outline in its colour. ``mask``: class ids or a ``uint64`` bitmask."""
    import cv2

    from segstudio.datasets.formats.writer_kit import class_planes
    from segstudio.engine.preprocess import to_uint8

    img = to_uint8(image)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGR)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    h, w = mask.shape[:2]
    size = (max(1, round(w * height / h)), height)
    out = cv2.resize(img, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    classes = [c for c in schema if c.id in set(class_ids)]
    for c, plane in class_planes(mask, classes, multilabel=schema.multilabel):
        small = cv2.resize(plane.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        bgr = np.array(c.colour[::-1], np.float32)
        sel = small.astype(bool)
        out[sel] = out[sel] * 0.6 + bgr * 0.4
        contours, _ = cv2.findContours(small, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        out_u8 = out.astype(np.uint8)
        cv2.drawContours(out_u8, contours, -1, tuple(int(v) for v in c.colour[::-1]), 2, lineType=cv2.LINE_AA)
        out = out_u8.astype(np.float32)
    return out.astype(np.uint8)


def _gallery_item(dataset: Dataset, sid: str, mask: np.ndarray, dice: float, result: Evaluation) -> GalleryItem:
    """GT (left) and prediction (right) over the image, side by side, as PNG bytes."""
    import cv2

    comp = next(c for c in result.samples if c.sample_id == sid)
    ids = comp.scored_ids
    image, gt = dataset.load_image(sid), dataset.load_gt(sid)
    assert gt is not None  # scored samples have GT
    left = overlay(image, gt, schema=dataset.schema, class_ids=ids)
    right = overlay(image, mask, schema=dataset.schema, class_ids=ids)
    gap = np.full((left.shape[0], 6, 3), 255, np.uint8)
    ok, buf = cv2.imencode(".png", np.hstack([left, gap, right]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:  # pragma: no cover - encoding a uint8 BGR array does not fail
        raise SegstudioError(f"The overlay of {sid} could not be encoded as PNG.")
    per = tuple((s.name, float(s.dice)) for s in comp.per_class if s.class_id in ids)
    return GalleryItem(sample_id=sid, dice=float(dice), per_class=per, png=buf.tobytes())


# tables ------------------------------------------------------------------------------------------------------
def describe_loss(cfg: dict[str, Any]) -> str:
    terms = (cfg.get("loss") or {}).get("terms") or []
    return " + ".join(f"{t.get('weight', 1):g}·{t.get('name', '?')}" if t.get("weight", 1) != 1 else str(t.get("name"))
                      for t in terms if isinstance(t, dict)) or "?"


def describe_infer(cfg: dict[str, Any]) -> str:
    """The checkpoint's recommended inference, which the report scores with (as ``evaluate`` and the app)."""
    inf = cfg.get("infer") or {}
    tta, post = inf.get("tta") or [], inf.get("post") or []
    return " · ".join([str(inf.get("mode") or "resize"), f"TTA {', '.join(tta)}" if tta else "no TTA",
                       f"post {', '.join(post)}" if post else "no post-processing"])


def describe_augment(cfg: dict[str, Any]) -> str:
    a = cfg.get("augment") or {}
    parts = [str(a.get("preset", "?"))]
    if a.get("hflip"):
        parts.append("hflip" + (" (swap)" if a.get("hflip_swap") else ""))
    for key in ("cutmix_p", "copy_paste_p"):
        if a.get(key):
            parts.append(f"{key[:-2]} {a[key]:g}")
    return ", ".join(parts)


def class_names(report: Report) -> list[str]:
    """Scored class names over all runs, in first-seen order."""
    return list(dict.fromkeys(n for r in report.runs for n in r.per_class("dice")))


def comparison(report: Report) -> tuple[list[str], list[list[Any]]]:
    """The comparison table: header and one row per run (numbers as floats; NaN where a run lacks a class)."""
    names = class_names(report)
    header = ["run", "model", "encoder", "epochs", "augmentation", "loss", "dice",
              *[f"dice:{n}" for n in names], "iou", *[f"iou:{n}" for n in names], "pixel_accuracy",
              "train_seconds", "device", "val_samples", "checkpoint"]
    rows = []
    for r in report.runs:
        m = r.config.get("model") or {}
        dice, iou = r.per_class("dice"), r.per_class("iou")
        model, members = m.get("architecture", "?"), m.get("members", 1)
        if isinstance(members, int) and members > 1:  # an ensemble trained as one model
            model = f"{model} ×{members}"
        rows.append([r.name, model, m.get("encoder", "?"),
                     r.run_info.get("epochs_completed", r.config.get("epochs", "?")), describe_augment(r.config),
                     describe_loss(r.config), r.evaluation.dice, *[dice.get(n, math.nan) for n in names],
                     r.evaluation.iou, *[iou.get(n, math.nan) for n in names], r.evaluation.pixel_accuracy,
                     r.run_info.get("train_seconds"), r.run_info.get("device", ""), len(r.evaluation.samples),
                     str(r.checkpoint)])
    return header, rows


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)


def to_json(report: Report) -> dict[str, Any]:
    header, rows = comparison(report)
    numeric = {"dice", "iou", "pixel_accuracy", "train_seconds"} | {h for h in header if ":" in h}
    return {
        "segstudio_version": segstudio.__version__,
        "created": report.created,
        "comparison": [{h: (_num(v) if h in numeric else v) for h, v in zip(header, row, strict=True)} for row in rows],
        "runs": [{
            "name": r.name, "folder": str(r.folder), "checkpoint": str(r.checkpoint), "dataset": r.dataset,
            "config": r.config, "run": r.run_info, "curves": list(r.curves),
            "evaluation": r.evaluation.to_dict(per_sample=True), "evaluation_seconds": round(r.eval_seconds, 2),
            "worst": [{"sample_id": g.sample_id, "dice": _num(g.dice), "per_class": {n: _num(d) for n, d in g.per_class}}
                      for g in r.gallery],
        } for r in report.runs],
    }


def to_csv(report: Report) -> str:
    header, rows = comparison(report)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        w.writerow(["" if _num_or(v) is None else _num_or(v) for v in row])
    return buf.getvalue()


def _num_or(v: Any) -> Any:
    return _num(v) if isinstance(v, float) else v


# HTML --------------------------------------------------------------------------------------------------------
def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _f4(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.4f}"


def _duration(s: Any) -> str:
    if not isinstance(s, int | float):
        return "unknown"
    s = float(s)
    if s < 120:
        return f"{s:.1f} s"
    m = int(s // 60)
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min {int(s % 60):02d} s"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo or 1.0
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


SERIES_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def svg_chart(series: Sequence[tuple[str, Sequence[float | None], bool]], *, xs: Sequence[float], title: str,
              ylabel: str, xlabel: str = "epoch", ylim: tuple[float, float] | None = None,
              width: int = 440, height: int = 270) -> str:
    """A line chart as inline SVG: ``series`` of ``(label, values, dashed)`` over ``xs``; missing values break
    nothing (the line joins the points there are)."""
    # the legend is laid out first: its rows (under the x axis) set the bottom margin
    legend: list[tuple[float, int]] = []
    lx, rows = 54.0, 0
    for label, _, _ in series:
        need = 30 + 6.8 * len(label)
        if lx + need > width - 6 and lx > 54:
            lx, rows = 54.0, rows + 1
        legend.append((lx, rows))
        lx += need
    ml, mr, mt, mb = 54, 14, 26, 52 + 16 * (rows + 1)
    height += 16 * rows
    pw, ph = width - ml - mr, height - mt - mb
    vals = [v for _, ys, _ in series for v in ys if v is not None and math.isfinite(v)]
    lo, hi = ylim if ylim is not None else ((min(vals), max(vals)) if vals else (0.0, 1.0))
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    if ylim is None:
        pad = (hi - lo) * 0.08
        lo, hi = lo - pad, hi + pad
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x1 - x0 < 1e-12:
        x0, x1 = x0 - 1, x1 + 1

    def px(x: float) -> float:
        return ml + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return mt + (hi - y) / (hi - lo) * ph

    out = [f'<svg class="chart" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
           f'<text x="{ml + pw / 2:.1f}" y="16" text-anchor="middle" class="t">{esc(title)}</text>',
           f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>']
    for t in _ticks(lo, hi):
        out.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#e4e4e4"/>'
                   f'<text x="{ml - 5}" y="{py(t) + 4:.1f}" text-anchor="end">{t:.3g}</text>')
    step = max(1, math.ceil(len(xs) / 10))
    for x in list(xs)[::step]:
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{mt + ph}" y2="{mt + ph + 4}" stroke="#666"/>'
                   f'<text x="{px(x):.1f}" y="{mt + ph + 16}" text-anchor="middle">{x:g}</text>')
    out.append(f'<text x="{ml + pw / 2:.1f}" y="{mt + ph + 32}" text-anchor="middle">{esc(xlabel)}</text>'
               f'<text transform="translate(13 {mt + ph / 2:.1f}) rotate(-90)" text-anchor="middle">{esc(ylabel)}</text>')
    for i, (label, ys, dashed) in enumerate(series):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        pts = [(px(x), py(y)) for x, y in zip(xs, ys, strict=False) if y is not None and math.isfinite(y)]
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        if len(pts) > 1:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        out.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{colour}"/>' for a, b in pts)
        lx, row = legend[i]
        row_y = mt + ph + 50 + 16 * row
        out.append(f'<line x1="{lx:.0f}" x2="{lx + 16:.0f}" y1="{row_y - 4}" y2="{row_y - 4}" stroke="{colour}" '
                   f'stroke-width="2"{dash}/><text x="{lx + 20:.0f}" y="{row_y}">{esc(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _curve_charts(r: RunReport) -> str:
    if not r.curves:
        return '<p class="note">No curves: the run has no curves.csv.</p>'
    xs = [float(row.get("epoch") or 0) + 1 for row in r.curves]

    def col(key: str) -> list[float | None]:
        return [row.get(key) for row in r.curves]

    loss = svg_chart([("train", col("train_loss"), False), ("validation", col("val_loss"), False)], xs=xs,
                     title="Loss per epoch", ylabel="loss")
    names = list(r.per_class("dice"))
    scores = [("mean Dice", col("dice"), False), ("mean IoU", col("iou"), False),
              *[(f"Dice {n}", col(f"dice:{n}"), True) for n in names if any(v is not None for v in col(f"dice:{n}"))]]
    return loss + svg_chart(scores, xs=xs, title="Validation scores per epoch", ylabel="score", ylim=(0.0, 1.0))


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:24px auto;max-width:1180px;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 8px;border-bottom:2px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.meta,.note{color:#666}
table{border-collapse:collapse;margin:6px 0 12px}th,td{padding:4px 9px;text-align:right;white-space:nowrap}
th{border-bottom:1px solid #333;font-weight:600}td.l,th.l{text-align:left}tr.mean td{border-top:1px solid #333;font-weight:600}
table.paper{border-top:2px solid #333;border-bottom:2px solid #333}table.paper th{white-space:normal;vertical-align:bottom}
.wide{overflow-x:auto;max-width:100%}table.paper tbody tr:nth-child(even){background:#f6f6f6}
dl.cfg{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}dl.cfg dt{color:#666}dl.cfg dd{margin:0}
.charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{font-size:11px;background:#fafafa;border:1px solid #eee}svg .t{font-size:13px;font-weight:600}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:14px}
figure{margin:0;border:1px solid #ddd;padding:6px;background:#fafafa}figure img{width:100%;height:auto;display:block}
figcaption{font-size:12px;margin-top:4px;word-break:break-all}.sw{display:inline-block;width:12px;height:12px;vertical-align:-1px;margin:0 4px 0 12px;border:1px solid #555}
details pre{background:#f4f4f4;padding:8px;overflow:auto;font-size:12px;max-height:320px}
"""


def _comparison_html(report: Report) -> str:
    header, rows = comparison(report)
    names = class_names(report)
    shown = 6 + 2 * (len(names) + 1)  # run .. loss, dice (+ per class), iou (+ per class)
    labels = ["Run", "Model", "Encoder", "Epochs", "Augmentation", "Loss", "Mean Dice", *[f"Dice {n}" for n in names],
              "Mean IoU", *[f"IoU {n}" for n in names]]
    best = {}
    if len(rows) > 1:
        for j in range(6, shown):
            vals = [row[j] for row in rows if isinstance(row[j], float) and not math.isnan(row[j])]
            if vals:
                best[j] = round(max(vals), 4)
    out = ['<div class="wide"><table class="paper"><thead><tr>']
    out += [f'<th class="l">{esc(h)}</th>' if j < 6 else f"<th>{esc(h)}</th>" for j, h in enumerate(labels)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for j in range(shown):
            v = row[j]
            if j < 6:
                out.append(f'<td class="l">{esc(v)}</td>')
            else:
                cell = esc(_f4(v))
                bold = j in best and isinstance(v, float) and not math.isnan(v) and round(v, 4) == best[j]
                out.append(f"<td>{'<b>' + cell + '</b>' if bold else cell}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _per_class_html(r: RunReport) -> str:
    s = r.evaluation.summary
    scored = set(s.scored_ids)
    rows = ['<table><thead><tr><th class="l">class</th><th>Dice</th><th>IoU</th><th>precision</th><th>recall</th>'
            '<th>GT pixels</th><th>predicted pixels</th></tr></thead><tbody>']
    for c in s.per_class:
        note = "" if c.class_id in scored else " (not in the means)"
        rows.append(f'<tr><td class="l">{esc(c.name)}{esc(note)}</td><td>{_f4(c.dice)}</td><td>{_f4(c.iou)}</td>'
                    f"<td>{_f4(c.precision)}</td><td>{_f4(c.recall)}</td><td>{c.gt_pixels:,}</td><td>{c.pred_pixels:,}</td></tr>")
    mp = [c.precision for c in s.per_class if c.class_id in scored and not math.isnan(c.precision)]
    mr = [c.recall for c in s.per_class if c.class_id in scored and not math.isnan(c.recall)]
    rows.append(f'<tr class="mean"><td class="l">mean</td><td>{_f4(r.evaluation.dice)}</td><td>{_f4(r.evaluation.iou)}</td>'
                f"<td>{_f4(float(np.mean(mp)) if mp else math.nan)}</td><td>{_f4(float(np.mean(mr)) if mr else math.nan)}</td>"
                "<td></td><td></td></tr></tbody></table>")
    ev = r.evaluation
    rows.append(f'<p class="note">Pooled over {len(ev.samples)} validation image(s) (split: the run\'s own hold-out); '
                f"pixel accuracy {_f4(ev.pixel_accuracy)}; mean over images: Dice {_f4(ev.sample_dice)}, "
                f"IoU {_f4(ev.sample_iou)}. Means run over the classes other than background.</p>")
    if ev.problems:
        rows.append(f'<p class="note">Left out, unreadable: {esc(", ".join(p.sample_id for p in ev.problems))}</p>')
    return "".join(rows)


def _config_html(r: RunReport) -> str:
    c, info = r.config, r.run_info
    m, d, o = c.get("model") or {}, c.get("data") or {}, c.get("optim") or {}
    done = info.get("epochs_completed")
    epochs = f"{done} of {c.get('epochs', '?')}" if done is not None and done != c.get("epochs") else str(c.get("epochs", "?"))
    items = [
        ("recipe / name", c.get("name") or "–"),
        ("model", f"{m.get('architecture', '?')}, encoder {m.get('encoder', '?')}"
                  + (f" (depth {m['encoder_depth']})" if m.get("encoder_depth") else "")
                  + f", weights {m.get('encoder_weights') or 'none (random init)'}"),
        ("epochs", epochs + (" (stopped early)" if info.get("stopped_early") else "")
                   + (" (cancelled)" if info.get("cancelled") else "")),
        ("image size", f"{d.get('image_size', '?')} px, batch {d.get('batch_size', '?')}, normalize {d.get('normalize', '?')}"),
        ("loss", describe_loss(c)),
        ("optimiser", f"{o.get('name', '?')}, lr {o.get('lr', '?')}, weight decay {o.get('weight_decay', '?')}"),
        ("augmentation", describe_augment(c)),
        ("training time", f"{_duration(info.get('train_seconds'))} on {info.get('device') or 'unknown device'}"),
        ("validation split", f"{info.get('split', '?')}, {len(r.evaluation.samples)} image(s)"),
        ("inference", describe_infer(c)),
        ("checkpoint", f"{r.checkpoint} (scored in {r.eval_seconds:.1f} s)"),
        ("dataset", r.dataset),
    ]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    full = esc(json.dumps(c, indent=2, default=str))
    return f'<dl class="cfg">{dl}</dl><details><summary>full training config</summary><pre>{full}</pre></details>'


def _gallery_html(r: RunReport) -> str:
    if not r.gallery:
        return '<p class="note">No gallery (--worst 0, or no image could be scored).</p>'
    legend = "".join(f'<span class="sw" style="background:rgb{tuple(col)}"></span>{esc(n)}' for n, col in r.colours)
    figs = []
    for g in r.gallery:
        per = ", ".join(f"{esc(n)} {_f4(d)}" for n, d in g.per_class)
        src = "data:image/png;base64," + base64.b64encode(g.png).decode("ascii")
        figs.append(f'<figure><img src="{src}" alt="{esc(g.sample_id)}"><figcaption><b>{esc(g.sample_id)}</b> — '
                    f"mean Dice {_f4(g.dice)}<br>{per}</figcaption></figure>")
    return (f'<p class="note">The {len(r.gallery)} validation image(s) with the lowest mean Dice. Left: GT; right: '
            f'prediction (translucent fill, outline).{legend}</p><div class="gallery">{"".join(figs)}</div>')


def to_html(report: Report) -> str:
    several = len(report.runs) > 1
    datasets = sorted({r.dataset for r in report.runs})
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
             f"<title>segstudio report: {esc(', '.join(r.name for r in report.runs))}</title>",
             f"<style>{CSS}</style></head><body>",
             f"<h1>Training report: {esc(', '.join(r.name for r in report.runs))}</h1>",
             f'<p class="meta">segstudio {esc(segstudio.__version__)}, {esc(report.created)}; dataset: '
             f"{esc(', '.join(datasets))}</p>",
             f"<h2>{'Comparison' if several else 'Summary'}</h2>", _comparison_html(report),
             '<p class="note">Dice and IoU of each run\'s best checkpoint on its validation split, pooled over '
             "its pixels" + ("; the best value of each column in bold." if several else ".") + "</p>"]
    for r in report.runs:
        parts += [f'<h2 id="run-{esc(r.name)}">Run {esc(r.name)}</h2>', "<h3>Configuration</h3>", _config_html(r),
                  "<h3>Curves</h3>", f'<div class="charts">{_curve_charts(r)}</div>',
                  f"<h3>Per class ({esc(r.checkpoint.name)} checkpoint, validation split)</h3>", _per_class_html(r),
                  "<h3>Worst images</h3>", _gallery_html(r)]
    parts.append("</body></html>\n")
    return "".join(parts)


def report_paths(out: str | Path) -> tuple[Path, Path, Path]:
    """``(html, csv, json)`` beside each other, named after ``out``'s stem."""
    p = Path(out).expanduser()
    html_path = p if p.suffix.lower() in (".html", ".htm") else p.with_name(p.name + ".html")
    return html_path, html_path.with_suffix(".csv"), html_path.with_suffix(".json")


def write_report(report: Report, out: str | Path) -> tuple[Path, Path, Path]:
    """Write the HTML, CSV and JSON files (each atomically); returns their paths."""
    html_path, csv_path, json_path = report_paths(out)
    atomic_write_text(csv_path, to_csv(report))
    atomic_write_json(json_path, to_json(report))
    atomic_write_text(html_path, to_html(report))
    return html_path, csv_path, json_path
