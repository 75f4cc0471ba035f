"""``segstudio info PATH``: detected format, class schema, splits, image sizes, problems (and --stats)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from segstudio.commands.progress import Progress, add_progress_arguments, progress_mode

EXAMPLES = """examples:
  segstudio info resources/samples/lungs
  segstudio info ~/data/road --stats            # + per-class pixel frequencies (progress on stderr)
  segstudio info ~/data/coco.json --json > report.json
  segstudio info ~/data/road --stats --progress json 2> progress.jsonl
"""

HELP = "describe a dataset: format, classes, splits, image sizes, problems (--stats: class pixel frequencies)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="dataset folder or annotation file")
    parser.add_argument("--format", metavar="NAME", help="format name (skips detection; see docs/formats.md)")
    parser.add_argument("--json", action="store_true", help="write one JSON object to stdout instead of text")
    parser.add_argument("--stats", action="store_true", help="decode every mask for per-class pixel frequencies")
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="format option, repeatable: multilabel=true, overlap=smallest, images=cxr, classes=bg,lesion",
    )
    add_progress_arguments(parser)


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` -> typed pair: true/false, integers, comma lists, else the string."""
    if "=" not in text:
        raise ValueError(f"Format options are KEY=VALUE, got {text!r}.")
    key, value = text.split("=", 1)
    low = value.strip().lower()
    if low in ("true", "yes", "1", "false", "no", "0") and key.strip() != "classes":
        return key.strip(), low in ("true", "yes", "1")
    if low.lstrip("-").isdigit():
        return key.strip(), int(low)
    if "," in value:
        return key.strip(), [v.strip() for v in value.split(",") if v.strip()]
    return key.strip(), value.strip()


def _run_scan(gen: Any, progress: Progress) -> Any:
    from segstudio.datasets.stats import ScanProgress

    result = None
    with progress:
        for ev in gen:
            if isinstance(ev, ScanProgress):
                progress.update(ev.done, ev.total)
            else:
                result = ev
    return result


def describe(path: str, *, format_name: str | None, options: dict[str, Any], stats: bool,
             progress: bool | str = "none") -> dict[str, Any]:
    """The report as a JSON-ready dict (raises ``DatasetError`` when the dataset cannot be opened). ``progress``:
    a mode of :mod:`segstudio.commands.progress` (``True``: a bar)."""
    mode = "bar" if progress is True else ("none" if progress is False else progress)
    from segstudio.datasets.registry import detect, open_dataset
    from segstudio.datasets.stats import scan_sizes, scan_stats

    candidates = [] if format_name else [{"format": d.name, "confidence": round(d.confidence, 3)} for d in detect(path)]
    ds = open_dataset(path, format=format_name, **options)
    sizes = _run_scan(scan_sizes(ds), Progress("sizes", mode=mode))
    extra = list(sizes.problems)
    report: dict[str, Any] = {
        "path": str(ds.root),
        "format": ds.format_name,
        "candidates": candidates,
        "options": {k: v for k, v in ds.options.items() if not k.startswith("_") and _jsonable(v)},
        "multilabel": ds.schema.multilabel,
        "ignore_index": ds.schema.ignore_index,
        "classes": [c.to_dict() for c in ds.schema],
        "samples": len(ds),
        "with_gt": sum(1 for s in ds if s.has_gt),
        "splits": ds.split_counts(),
        "image_size": sizes.to_dict(),
        # mm per pixel (row, column): the first image's own header, else classes.json's "spacing"; None: unknown
        "pixel_spacing": list(ds.pixel_spacing(ds.samples[0]) or ()) or None if ds.samples else None,
    }
    if stats:
        cs = _run_scan(scan_stats(ds), Progress("masks", mode=mode))
        extra += list(cs.problems)
        report["stats"] = cs.to_dict()
    report["problems"] = [p.to_dict() for p in ds.all_problems() + extra]
    return report


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


def render_text(r: dict[str, Any]) -> str:
    lines = [f"Dataset: {r['path']}", f"Format:  {r['format']}"]
    if len(r["candidates"]) > 1:
        lines.append("  (also fits: " + ", ".join(f"{c['format']} {c['confidence']:.2f}" for c in r["candidates"][1:]) + ")")
    kind = "multi-label (one bit per class)" if r["multilabel"] else "semantic (one class per pixel)"
    lines.append(f"Classes: {len(r['classes'])}, {kind}" + (f", ignore index {r['ignore_index']}" if r["ignore_index"] is not None else ""))
    freq = r.get("stats", {}).get("frequencies", {})
    for c in r["classes"]:
        f = freq.get(str(c["id"]))
        share = f"  {100 * f:6.2f}% of labelled pixels" if f is not None else ""
        ign = " (ignore)" if c["ignore"] else ""
        lines.append(f"  {c['id']:>3}  {c['name']:<28} rgb{tuple(c['colour'])}{ign}{share}")
    lines.append(f"Samples: {r['samples']} ({r['with_gt']} with ground truth)")
    sp = r.get("pixel_spacing")
    lines.append(f"Pixel spacing: {sp[0]:g} × {sp[1]:g} mm (row × column, first image)" if sp
                 else "Pixel spacing: unknown (lengths in pixels; a DICOM header or \"spacing\" in classes.json "
                      "gives mm)")
    lines.append("Splits:  " + ", ".join(f"{k} {v}" for k, v in sorted(r["splits"].items())))
    sz = r["image_size"]
    if sz["min"]:
        rng = f"{sz['min'][0]}x{sz['min'][1]}" + (f" .. {sz['max'][0]}x{sz['max'][1]}" if sz["distinct"] > 1 else "")
        lines.append(f"Images:  {rng} ({sz['distinct']} distinct size{'s' if sz['distinct'] != 1 else ''})")
    if "stats" in r:
        lines.append(f"Masks read: {r['stats']['masks_read']}")
    probs = r["problems"]
    lines.append(f"Problems: {len(probs)}" if probs else "Problems: none")
    for p in probs:
        where = f" [{p['path']}]" if p["path"] else ""
        lines.append(f"  {p['kind']}: {p['message']}{where}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from segstudio.core.errors import SegstudioError
    from segstudio.datasets.registry import AmbiguousFormatError

    try:
        options = dict(parse_option(o) for o in args.option)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        report = describe(
            args.path,
            format_name=args.format,
            options=options,
            stats=args.stats,
            progress=progress_mode(args),
        )
    except AmbiguousFormatError as e:
        if args.json:
            print(json.dumps({"error": str(e), "candidates": [{"format": n, "confidence": c} for n, c in e.candidates]}))
        else:
            print(f"error: {e}", file=sys.stderr)
        return 2
    except SegstudioError as e:  # DatasetError, UnknownKeyError (format or option value): a user error, 2
        if args.json:
            print(json.dumps({"error": str(e)}))
        else:
            print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=None if args.json else 2) if args.json else render_text(report))
    return 0
