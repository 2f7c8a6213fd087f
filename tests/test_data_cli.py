"""`omnireid data summary` end to end."""

from __future__ import annotations

import json

from omnireid.cli import main
from tests._data_fixtures import touch_images


def test_data_summary_prints_table_and_writes_json(tmp_path, capsys):
    base = tmp_path / "market1501" / "Market-1501-v15.09.15"
    touch_images(base / "bounding_box_train", ["0002_c1s1_000451_03.jpg", "0002_c2s1_0001_01.jpg", "bad.jpg"])
    touch_images(base / "query", ["0005_c1s1_000001_00.jpg"])
    touch_images(base / "bounding_box_test", ["0005_c3s1_000002_00.jpg", "-1_c1s1_0003_00.jpg"])
    out = tmp_path / "s.json"
    assert main(["data", "summary", "market1501", "--root", str(tmp_path), "--json", str(out), "--verify"]) == 0
    text = capsys.readouterr().out
    lines = [line.split() for line in text.splitlines()]
    assert ["train", "1", "2", "2"] in lines and ["gallery", "1", "1", "1"] in lines
    assert "bad.jpg" in text and "junk images left out (id -1): 1" in text
    assert "verified 4 images: 0 unreadable" in text
    info = json.loads(out.read_text())
    assert info["splits"][0] == {"split": "train", "num_ids": 1, "num_images": 2, "num_cameras": 2}


def test_data_summary_no_cameras_and_errors(tmp_path, capsys):
    touch_images(tmp_path / "ids" / "alice", ["1.jpg", "2.jpg"])
    assert main(["data", "summary", "identity_folders", "--root", str(tmp_path / "ids")]) == 0
    assert "cameras: unknown" in capsys.readouterr().out
    assert main(["data", "summary", "viper", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "viper") in err and "Expected layout" in err
    assert main(["data", "summary", "market_style", "--root", str(tmp_path), "-o", "nonsense=1"]) == 2
    err = capsys.readouterr().err
    assert "'nonsense' is not an option of the market_style reader" in err
    assert "Valid options: test_fraction, split_seed" in err
