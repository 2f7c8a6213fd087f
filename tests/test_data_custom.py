"""Custom data readers, identity split, multi-source combination and combineall."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnireid.data import (
    UNKNOWN_CAMERA,
    DatasetLayoutError,
    ReIDDataset,
    Sample,
    combine_datasets,
    load_dataset,
)
from omnireid.data.combine import combine_all
from omnireid.data.datasets.custom import split_by_identity
from tests._data_fixtures import touch_images


def test_market_style_with_split_folders(tmp_path):
    touch_images(tmp_path / "train", ["0005_c1_a.jpg", "0005_c2_b.png", "0009_c1_c.jpg", "-1_c1_junk.jpg", "oops.jpg"])
    touch_images(tmp_path / "query", ["0100_c1_q.jpg"])
    touch_images(tmp_path / "gallery", ["0100_c3_g.jpg", "0101_c2_g.jpg"])
    ds = load_dataset("market_style", tmp_path)
    assert [(s.pid, s.camid) for s in ds.train] == [(0, 0), (0, 1), (1, 0)]
    assert [(s.pid, s.camid) for s in ds.gallery] == [(100, 2), (101, 1)]
    assert ds.extra["junk_dropped"] == 1
    assert ds.extra["unparsed"]["count"] == 1 and "oops.jpg" in ds.extra["unparsed"]["examples"][0][0]


def test_market_style_flat_with_test_fraction(tmp_path):
    names = [f"{p:04d}_c{c}_{k}.jpg" for p in range(1, 11) for c in (1, 2) for k in range(2)]
    touch_images(tmp_path, names)
    ds = load_dataset("market_style", tmp_path, test_fraction=0.3, split_seed=1)
    test_ids = {s.pid for s in ds.query}
    assert len(test_ids) == 3 and len(ds.train) == 7 * 4
    assert len(ds.query) == 3 * 2  # one per (id, camera)
    assert len(ds.gallery) == 3 * 2
    assert {s.pid for s in ds.gallery} == test_ids
    again = load_dataset("market_style", tmp_path, test_fraction=0.3, split_seed=1)
    assert again.query == ds.query


def test_market_style_no_usable_names(tmp_path):
    touch_images(tmp_path, ["a.jpg", "b.jpg"])
    with pytest.raises(DatasetLayoutError, match="2 file"):
        load_dataset("market_style", tmp_path)


def test_csv_manifest_with_split_and_text_ids(tmp_path):
    touch_images(tmp_path / "img", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    (tmp_path / "m.csv").write_text(
        "path,pid,camid,split\nimg/a.jpg,bob,0,train\nimg/b.jpg,alice,1,train\n"
        "img/c.jpg,carol,0,query\nimg/d.jpg,carol,1,gallery\n")
    ds = load_dataset("csv_manifest", tmp_path / "m.csv")
    assert ds.has_cameras
    assert [(Path(s.path).name, s.pid) for s in ds.train] == [("a.jpg", 1), ("b.jpg", 0)]  # alice < bob
    assert ds.query[0].pid == ds.gallery[0].pid == 2
    assert ds.extra["id_names"] == ["alice", "bob", "carol"]


def test_csv_manifest_no_cameras_and_errors(tmp_path):
    touch_images(tmp_path, ["a.jpg", "b.jpg"])
    (tmp_path / "m.csv").write_text("a.jpg,3,\nb.jpg,4,-1\n")
    ds = load_dataset("csv_manifest", tmp_path / "m.csv")
    assert not ds.has_cameras and {s.camid for s in ds.train} == {UNKNOWN_CAMERA}
    (tmp_path / "bad.csv").write_text("a.jpg,3,x\nb.jpg,4,0,validation\n")
    with pytest.raises(ValueError, match="2 file.*camid 'x'"):
        load_dataset("csv_manifest", tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("nope.jpg,1,0\n")
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        load_dataset("csv_manifest", tmp_path / "missing.csv")


def test_identity_folders(tmp_path):
    touch_images(tmp_path / "zoe", ["1.jpg", "2.jpg", "3.jpg"])
    touch_images(tmp_path / "adam", ["x.png", "y.png"])
    touch_images(tmp_path / "mia", ["only.jpg"])
    (tmp_path / "empty").mkdir()
    ds = load_dataset("identity_folders", tmp_path)
    assert not ds.has_cameras
    assert ds.extra["id_names"] == ["adam", "empty", "mia", "zoe"]
    assert ds.extra["empty_identities"] == ["empty"]
    assert [s.pid for s in ds.train] == [0, 0, 1, 2, 2, 2]  # relabelled over ids with images
    split = load_dataset("identity_folders", tmp_path, test_fraction=0.99)
    # without cameras: one query per identity with >= 2 images; single-image ids only in gallery
    assert len(split.query) == 2 and len(split.gallery) == 4


def test_split_by_identity_with_cameras_needs_another_camera():
    samples = [Sample(f"{p}_{c}_{k}", p, c) for p in range(4) for c in ((0, 1) if p < 3 else (0,)) for k in range(2)]
    train, query, gallery = split_by_identity(samples, 0.99, seed=0, has_cameras=True)
    assert not train
    assert {s.pid for s in query} == {0, 1, 2}  # id 3 has one camera: never a query
    assert len(query) == 6
    assert sum(s.pid == 3 for s in gallery) == 2


def _ds(name, train, query=(), gallery=(), **kw):
    return ReIDDataset(name, list(train), list(query), list(gallery), **kw)


def test_combine_datasets_offsets_and_dsetids():
    a = _ds("a", [Sample("a1", 0, 0), Sample("a2", 1, 2)], [Sample("aq", 5, 0)], [Sample("ag", 5, 2), Sample("ag0", 0, 1)])
    b = _ds("b", [Sample("b1", 10, 0), Sample("b2", 20, 1)], [Sample("bq", 5, 0)], [Sample("bg", 5, 1)])
    c = combine_datasets([a, b])
    assert c.name == "a+b" and c.extra["sources"] == ["a", "b"]
    assert [(s.pid, s.camid, s.dsetid) for s in c.train] == [(0, 0, 0), (1, 2, 0), (2, 3, 1), (3, 4, 1)]
    # test ids of b moved beyond those of a; cameras of b after the 3 of a
    assert [(s.pid, s.camid, s.dsetid) for s in c.query] == [(5, 0, 0), (11, 3, 1)]
    assert {s.pid for s in c.gallery if s.dsetid == 0}.isdisjoint({s.pid for s in c.gallery if s.dsetid == 1})


def test_combine_keeps_unknown_cameras_unknown():
    a = _ds("a", [Sample("a1", 0, 0)])
    b = _ds("b", [Sample("b1", 0, UNKNOWN_CAMERA)], has_cameras=False)
    c = combine_datasets([a, b])
    assert [s.camid for s in c.train] == [0, UNKNOWN_CAMERA] and not c.has_cameras


def test_load_dataset_plus_combines(tmp_path):
    for name in ("one", "two"):
        touch_images(tmp_path / name, [f"{p:04d}_c1_x.jpg" for p in (3, 4)])
    a = load_dataset("market_style", tmp_path / "one")
    ds = combine_datasets([a, load_dataset("market_style", tmp_path / "two")])
    assert sorted({s.pid for s in ds.train}) == [0, 1, 2, 3] and sorted({s.dsetid for s in ds.train}) == [0, 1]


def test_combine_all_deduplicates_shared_lists():
    test = [Sample("t1", 7, 0), Sample("t2", 7, 1), Sample("junk", -1, 0)]
    ds = _ds("x", [Sample("a", 0, 0)], test, test, extra={"junk_pids": [-1]})
    out = combine_all(ds)
    assert [(s.path, s.pid) for s in out.train] == [("a", 0), ("t1", 1), ("t2", 1)]
    assert out.extra["combineall"]
