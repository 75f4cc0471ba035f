"""``segstudio quality`` on the real Montgomery data: the ranked CSV and JSON, rules from a file (and a clear error for
a bad one), and a predictions folder adding the model's checks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from segstudio.cli import main


def test_quality_writes_a_ranked_csv_and_json(montgomery: Path, tmp_path: Path, capsys) -> None:
    rc = main(["quality", str(montgomery), "--format", "class-folders", "--out", str(tmp_path / "q.csv"),
               "--top", "3", "--progress", "none"])
    out = capsys.readouterr().out
    assert rc == 0
    rows = list(csv.DictReader(open(tmp_path / "q.csv", encoding="utf-8")))
    assert len(rows) == 40 and [int(r["rank"]) for r in rows] == list(range(1, 41))
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert set(rows[0]) >= {"sample_id", "top_reason", "checks", "score:left lung", "score:right lung"}
    doc = json.loads((tmp_path / "q.json").read_text())
    assert doc["model"] == {"kind": "none"} and len(doc["samples"]) == 40
    assert doc["weights"]["missing"] == 1.0 and doc["samples"][0]["sample_id"] == rows[0]["sample_id"]
    assert rows[0]["sample_id"] in out and "40 label(s) ranked" in out and "(without a model)" in out


def test_rules_from_a_file_and_a_bad_rules_file(montgomery: Path, tmp_path: Path, capsys) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"classes": [{"name": "left lung", "components": 1, "image_side": "left"}]}))
    assert main(["quality", str(montgomery), "--format", "class-folders", "--rules", str(rules),
                 "--out", str(tmp_path / "r.json"), "--progress", "none"]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["rules"] == str(rules)
    # the rule is wrong for PA films (the left lung lies on the image's right): every image breaks it
    assert all(any(r["check"] == "side" for r in s["reasons"]) for s in doc["samples"])
    capsys.readouterr()
    rules.write_text(json.dumps({"classes": [{"name": "left lung", "componets": 1}]}))
    assert main(["quality", str(montgomery), "--format", "class-folders", "--rules", str(rules),
                 "--out", str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "unknown key" in err and str(rules) in err and not (tmp_path / "bad.csv").exists()


def test_a_predictions_folder_adds_the_model_checks(montgomery: Path, tmp_path: Path, capsys) -> None:
    from segstudio.datasets.registry import open_dataset
    from segstudio.workspace.maskio import write_mask

    ds = open_dataset(montgomery, format="class-folders")
    preds = tmp_path / "preds"
    victim = ds.samples[4]
    for s in ds.samples:
        m = ds.load_gt(s).copy()
        if s.id == victim.id:
            m[m == 2] = 0  # the model misses a lung on one image: it disagrees with that label
        stem = preds / Path(s.id).with_suffix("")
        stem.parent.mkdir(parents=True, exist_ok=True)
        write_mask(stem, m)
    assert main(["quality", str(montgomery), "--format", "class-folders", "--predictions", str(preds),
                 "--out", str(tmp_path / "p.csv"), "--progress", "none", "--no-images"]) == 0
    assert "(with the predictions folder)" in capsys.readouterr().out
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["model"]["kind"] == "predictions folder"
    top = doc["samples"][0]
    assert top["sample_id"] == victim.id and any(r["check"] == "disagreement" for r in top["reasons"])


def test_the_output_folder_must_exist(montgomery: Path, tmp_path: Path, capsys) -> None:
    assert main(["quality", str(montgomery), "--out", str(tmp_path / "nope" / "q.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--checkpoint", "--predictions"])
def test_model_sources_exclude_each_other(flag: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["quality", "x", "--out", str(tmp_path / "q"), flag, "a", "--folds", "3"])
