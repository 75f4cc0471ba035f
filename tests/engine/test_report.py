"""``segstudio report`` on two tiny real runs on Montgomery (2 epochs of 2 steps at 64²), through the CLI's
``main``: the HTML is self-contained and holds what it promises, its CSV and JSON agree with it, and its Dice is
``segstudio evaluate``'s for the same checkpoint on the same images. Bad input ends with exit 2 and one line."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from segstudio.cli import main
from segstudio.datasets.registry import open_dataset
from segstudio.engine.recipes import load_recipe
from segstudio.engine.report import esc, svg_chart
from segstudio.engine.train import train

TINY = ["model.encoder=resnet18", "model.encoder_depth=3", "image_size=64", "val_fraction=0.2", "epochs=2", "max_steps_per_epoch=2",
        "batch_size=4", "cache_mb=64"]
#: two runs that differ the way a paper's table compares them: loss and augmentation
RUNS = {
    "unet-ce-dice": ["augment.preset=none"],
    "unet-ce-light": ["augment.preset=light", "loss.terms=ce", "model.aux_head=false"],
    # an ensemble trained as one model (with the recipe's aux head): reported and evaluated as one network
    "unet-x2": ["augment.preset=none", "model.members=2"],
}
WORST = 3


@pytest.fixture(scope="module")
def runs(montgomery: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("report-runs")
    ds = open_dataset(montgomery)
    out = []
    for name, overrides in RUNS.items():
        cfg = load_recipe("lungs-lr").with_overrides([*TINY, *overrides])
        fin = list(train(cfg, ds, run_dir=root / name))[-1]
        assert fin.best_checkpoint is not None
        out.append(root / name)
    yield out
    shutil.rmtree(root, ignore_errors=True)  # some 370 MB of checkpoints


@pytest.fixture(scope="module")
def report(runs: list[Path], montgomery: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("report") / "tmp" / "report.html"
    rc = main(["report", *map(str, runs), "--dataset", str(montgomery), "--out", str(out), "--worst", str(WORST), "-q"])
    assert rc == 0
    return {"html": out.read_text(encoding="utf-8"), "csv": list(csv.DictReader(open(out.with_suffix(".csv"), encoding="utf-8"))),
            "json": json.loads(out.with_suffix(".json").read_text(encoding="utf-8")), "path": out}


def test_the_html_is_self_contained_and_complete(report):
    text = report["html"]
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text
    for name in RUNS:
        assert f"Run {name}" in text
    table = text[text.index('<table class="paper">'):]
    table = table[: table.index("</table>")]
    for col in ("Dice left lung", "Dice right lung", "IoU left lung", "IoU right lung", "Mean Dice", "Mean IoU",
                "Augmentation", "Loss", "Epochs", "Encoder", "Model"):
        assert f">{col}</th>" in table
    assert table.count("<tr>") == 1 + len(RUNS)
    assert text.count("<svg") == 2 * len(RUNS)  # loss and scores per run
    for chart in re.findall(r"<svg.*?</svg>", text, re.S):
        assert "epoch</text>" in chart and "<polyline" in chart
    imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(imgs) == WORST * len(RUNS)
    png = cv2.imdecode(np.frombuffer(base64.b64decode(imgs[0]), np.uint8), cv2.IMREAD_COLOR)
    assert png is not None and png.shape[0] > 100 and png.shape[1] > 2 * png.shape[0] * 0.5
    assert "left lung" in text and "background:rgb(" in text  # the legend of class colours
    assert "training time" in text and "cpu" in text


def test_csv_and_json_agree_with_the_html(report):
    text, rows, doc = report["html"], report["csv"], report["json"]
    assert [r["run"] for r in rows] == list(RUNS) == [r["run"] for r in doc["comparison"]]
    for row, js in zip(rows, doc["comparison"], strict=True):
        for key in ("dice", "iou", "dice:left lung", "dice:right lung", "iou:left lung", "iou:right lung"):
            assert float(row[key]) == pytest.approx(js[key], abs=1e-6)
            assert f"{js[key]:.4f}" in text
    best = max(r["dice"] for r in doc["comparison"])
    assert f"<b>{best:.4f}</b>" in text  # the best mean Dice in bold
    by_name = {r["name"]: r for r in doc["runs"]}
    for js in doc["comparison"]:
        assert by_name[js["run"]]["evaluation"]["dice"] == pytest.approx(js["dice"], abs=1e-6)
        assert js["model"] == ("unet ×2" if js["run"] == "unet-x2" else "unet")
        assert js["encoder"] == "resnet18" and js["epochs"] == 2
    assert doc["comparison"][1]["augmentation"].startswith("light") and doc["comparison"][1]["loss"] == "ce"


def test_the_gallery_shows_the_lowest_dice(report):
    for run in report["json"]["runs"]:
        per = sorted(s["dice"] for s in run["evaluation"]["per_sample"])
        assert [w["dice"] for w in run["worst"]] == pytest.approx(per[:WORST], abs=1e-6)
        for w in run["worst"]:
            assert esc(w["sample_id"]) in report["html"]


def test_the_dice_is_what_evaluate_reports(report, runs, montgomery, capsys):
    for run in report["json"]["runs"]:
        capsys.readouterr()
        assert main(["evaluate", run["checkpoint"], str(montgomery), "--split", "val", "--json", "-q"]) == 0
        ev = json.loads(capsys.readouterr().out)
        mine = run["evaluation"]
        assert mine["samples"] == ev["samples"] == 8
        assert mine["dice"] == pytest.approx(ev["dice"], abs=1e-6)
        assert mine["iou"] == pytest.approx(ev["iou"], abs=1e-6)
        for a, b in zip(mine["per_class"], ev["per_class"], strict=True):
            assert a["name"] == b["name"] and a["dice"] == pytest.approx(b["dice"], abs=1e-6)


def test_strings_from_files_are_escaped(runs, montgomery, tmp_path):
    hostile = tmp_path / '<i>x&"y</i>'
    shutil.copytree(runs[0], hostile)
    out = tmp_path / "one.html"
    assert main(["report", str(hostile), "--dataset", str(montgomery), "--out", str(out), "--worst", "1", "-q"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "<i>x&" not in text and "&lt;i&gt;x&amp;&quot;y&lt;/i&gt;" in text
    assert "Summary" in text and "<b>" not in text.split("</table>")[0].split('class="paper"')[1]  # one run: no bold


def _error(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segstudio report: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_exits_2_naming_the_path_and_the_fix(runs, montgomery, tmp_path, capsys):
    out = str(tmp_path / "r.html")
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    err = _error(capsys, ["report", str(empty), "--dataset", str(montgomery), "--out", out])
    assert str(empty) in err and "not a run folder" in err and "Fix:" in err
    missing = tmp_path / "no-such-run"
    assert str(missing) in _error(capsys, ["report", str(runs[0]), str(missing), "--out", out])
    bare = tmp_path / "no-checkpoints"
    bare.mkdir()
    shutil.copy(runs[0] / "train_config.json", bare / "train_config.json")
    err = _error(capsys, ["report", str(bare), "--dataset", str(montgomery), "--out", out])
    assert "no checkpoint" in err and str(bare) in err and "--resume" in err
    gone = tmp_path / "moved-dataset"
    err = _error(capsys, ["report", str(runs[0]), "--dataset", str(gone), "--out", out])
    assert str(gone) in err and "--dataset" in err
    old = tmp_path / "older-run"  # a run from before runs recorded their dataset
    shutil.copytree(runs[0], old)
    record = json.loads((old / "run.json").read_text(encoding="utf-8"))
    del record["dataset"]
    (old / "run.json").write_text(json.dumps(record), encoding="utf-8")
    err = _error(capsys, ["report", str(old), "--out", out])
    assert str(old) in err and "--dataset DATASET" in err
    assert not Path(out).exists()


def test_svg_chart_draws_a_single_epoch_and_missing_values():
    svg = svg_chart([("train", [0.5], False), ("validation", [None], False)], xs=[1.0], title="t<&>", ylabel="loss")
    assert svg.startswith("<svg") and "t&lt;&amp;&gt;" in svg and "<circle" in svg and "nan" not in svg.lower()


def test_a_run_records_its_dataset_and_the_report_finds_it(runs: list[Path], montgomery: Path,
                                                            tmp_path: Path) -> None:
    recorded = json.loads((runs[0] / "run.json").read_text(encoding="utf-8"))
    assert Path(recorded["dataset"]) == open_dataset(montgomery).root and recorded["dataset_format"]
    out = tmp_path / "solo.html"
    assert main(["report", str(runs[0]), "--out", str(out), "--worst", "1", "-q"]) == 0
    assert "Run unet-ce-dice" in out.read_text(encoding="utf-8")
