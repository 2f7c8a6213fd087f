"""Readers of the standard layouts on fixture trees written here (real names, junk, bad names)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from omnireid.data import DatasetLayoutError, list_datasets, load_dataset
from tests._data_fixtures import touch_images, write_png


def ids(samples):
    return sorted({s.pid for s in samples})


def cams(samples):
    return sorted({s.camid for s in samples})


# ---------------------------------------------------------------------------------------------
# Market-1501


def make_market(root: Path, nested: bool = True) -> Path:
    base = root / "market1501" / ("Market-1501-v15.09.15" if nested else "")
    touch_images(base / "bounding_box_train", [
        "0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c3s3_077419_03.jpg",
        "0010_c6s4_002427_02.jpg", "0010_c1s1_000000_01.jpg",
        "Thumbs.db.jpg",  # malformed: no PID_cCAM
    ])
    (base / "bounding_box_train" / "readme.txt").write_text("not an image")
    touch_images(base / "query", ["0001_c1s1_001051_00.jpg", "0003_c2s1_000100_00.jpg"])
    touch_images(base / "bounding_box_test", [
        "-1_c1s1_000401_03.jpg", "-1_c2s1_000402_03.jpg",  # junk: dropped, counted
        "0000_c1s1_000151_01.jpg",  # distractor: kept with id 0
        "0001_c2s1_000200_01.jpg", "0003_c5s1_000300_01.jpg",
        "0004_c7s1_000100_01.jpg",  # camera 7 does not exist in Market: reported
    ])
    touch_images(base / "images", ["0000_c1s1_900000_00.jpg", "-1_c3s1_900001_00.jpg"])
    return root


def test_market1501_ids_cameras_junk_and_bad_names(tmp_path, caplog):
    ds = load_dataset("market1501", make_market(tmp_path))
    # train ids 2, 7, 10 relabelled in sorted order
    by_name = {Path(s.path).name: s for s in ds.train}
    assert by_name["0002_c1s1_000451_03.jpg"].pid == 0
    assert by_name["0007_c3s3_077419_03.jpg"].pid == 1
    assert by_name["0010_c6s4_002427_02.jpg"].pid == 2
    assert by_name["0010_c6s4_002427_02.jpg"].camid == 5
    assert len(ds.train) == 5
    assert [(Path(s.path).name, s.pid, s.camid) for s in ds.query] == [
        ("0001_c1s1_001051_00.jpg", 1, 0), ("0003_c2s1_000100_00.jpg", 3, 1)]
    assert ids(ds.gallery) == [0, 1, 3]
    assert len(ds.gallery) == 3
    assert ds.extra["junk_dropped"] == 2
    unparsed = ds.extra["unparsed"]
    assert unparsed["count"] == 2
    reasons = " ".join(why for _, why in unparsed["examples"])
    assert "PID_cCAM" in reasons and "camera 7" in reasons
    assert "2 file(s) not used" in caplog.text


def test_market1501_flat_layout_and_500k(tmp_path):
    ds = load_dataset("market1501", make_market(tmp_path, nested=False), market1501_500k=True)
    assert len(ds.gallery) == 4  # + one distractor from images/, its junk one dropped
    assert ds.extra["junk_dropped"] == 3


def test_market1501_combineall_drops_junk_ids(tmp_path):
    ds = load_dataset("market1501", make_market(tmp_path), combineall=True)
    # train 3 ids + test ids {1, 3} (0 is a distractor id and is left out)
    assert ids(ds.train) == [0, 1, 2, 3, 4]
    assert len(ds.train) == 5 + 2 + 2


def test_missing_folder_names_path_and_layout(tmp_path):
    (tmp_path / "market1501" / "bounding_box_train").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError) as err:
        load_dataset("market1501", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "market1501" / "query") in msg
    assert "Expected layout" in msg and "bounding_box_test" in msg


def test_unknown_dataset_name_suggests():
    with pytest.raises(KeyError, match="market1501"):
        load_dataset("market1502", "/tmp")
    assert {"market1501", "dukemtmcreid", "msmt17", "cuhk03", "cuhk01", "viper", "grid", "prid", "ilids",
            "synthetic_a", "market_style", "csv_manifest", "identity_folders"} <= set(list_datasets())


def test_dukemtmcreid(tmp_path):
    base = tmp_path / "dukemtmc-reid" / "DukeMTMC-reID"
    touch_images(base / "bounding_box_train", ["0001_c2_f0046182.jpg", "0001_c8_f0046183.jpg", "0005_c1_f1.jpg"])
    touch_images(base / "query", ["0005_c2_f0046985.jpg"])
    touch_images(base / "bounding_box_test", ["0002_c1_f0044158.jpg", "0005_c5_f1.jpg", "0009_c9_f1.jpg"])
    ds = load_dataset("dukemtmcreid", tmp_path)
    assert [(s.pid, s.camid) for s in ds.train] == [(0, 1), (0, 7), (1, 0)]
    assert [(s.pid, s.camid) for s in ds.gallery] == [(2, 0), (5, 4)]
    assert ds.extra["unparsed"]["count"] == 1  # camera 9


# ---------------------------------------------------------------------------------------------
# MSMT17


@pytest.mark.parametrize("version,train_dir,test_dir", [
    ("MSMT17_V1", "train", "test"), ("MSMT17_V2", "mask_train_v2", "mask_test_v2")])
def test_msmt17_list_files(tmp_path, version, train_dir, test_dir):
    main = tmp_path / "msmt17" / version
    train = ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0000/0000_001_05_0303morning_0016_0.jpg 0",
             "0001/0001_000_15_0303noon_0001_1.jpg 1"]
    val = ["0001/0001_001_03_0303noon_0002_1.jpg 1"]
    query = ["0000/0000_000_07_0303morning_0017_0.jpg 0"]
    gallery = ["0000/0000_001_02_0303morning_0018_0.jpg 0", "0002/0002_000_11_0303afternoon_0001_0.jpg 2",
               "garbage line with too many fields"]
    for name, lines in (("train", train), ("val", val), ("query", query), ("gallery", gallery)):
        (main).mkdir(parents=True, exist_ok=True)
        (main / f"list_{name}.txt").write_text("\n".join(lines) + "\n")
    (main / train_dir).mkdir()
    (main / test_dir).mkdir()
    ds = load_dataset("msmt17", tmp_path)
    assert ds.extra["version"] == version
    assert [(s.pid, s.camid) for s in ds.train] == [(0, 0), (0, 4), (1, 14)]
    assert ds.train[0].path == str(main / train_dir / "0000/0000_000_01_0303morning_0015_0.jpg")
    assert [(s.pid, s.camid) for s in ds.query] == [(0, 6)]
    assert [(s.pid, s.camid) for s in ds.gallery] == [(0, 1), (2, 10)]
    assert ds.extra["unparsed"]["count"] == 1
    # combineall adds the validation list, then query+gallery ids after the training ids
    full = load_dataset("msmt17", tmp_path, combineall=True)
    assert len(full.train) == 3 + 1 + 1 + 2
    assert ids(full.train) == [0, 1, 2, 3]


def test_msmt17_missing_version_dir(tmp_path):
    (tmp_path / "msmt17").mkdir()
    with pytest.raises(DatasetLayoutError, match="MSMT17_V1"):
        load_dataset("msmt17", tmp_path)


# ---------------------------------------------------------------------------------------------
# CUHK03: a cuhk-03.mat in the real HDF5 structure, and the new-protocol .mat files


def make_cuhk03(root: Path) -> dict:
    """2 camera pairs (3 and 2 people); person (1, 2) has images only in view 1."""
    import h5py  # dev dependency: the CUHK03 reader needs it
    from scipy.io import savemat
    dataset_dir = root / "cuhk03"
    (dataset_dir / "cuhk03_release").mkdir(parents=True)
    layout = {1: 3, 2: 2}
    rng = np.random.default_rng(0)
    with h5py.File(dataset_dir / "cuhk03_release" / "cuhk-03.mat", "w") as f:
        refs_group = f.create_group("#refs#")
        counter = [0]

        def store(data):
            counter[0] += 1
            ds = refs_group.create_dataset(f"r{counter[0]}", data=data)
            return ds.ref

        for kind in ("detected", "labeled"):
            pair_refs = []
            for pair, people in layout.items():
                cells = np.empty((10, people), dtype=h5py.ref_dtype)  # stored transposed, as MATLAB does
                for person in range(people):
                    for image in range(10):
                        present = image in (0, 1, 5, 6) and not (pair == 1 and person == 1 and image >= 5)
                        if present:
                            h, w = 12 + image, 6
                            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                            cells[image, person] = store(img.T)  # MATLAB column-major: (3, W, H)
                        else:
                            cells[image, person] = store(np.zeros(2, dtype=np.uint64))  # empty cell
                pair_refs.append(store(cells))
            f.create_dataset(kind, data=np.array([pair_refs], dtype=h5py.ref_dtype))
        tests = [np.array([[1, 1], [2, 2]], dtype=np.float64), np.array([[1, 3], [2, 1]], dtype=np.float64)]
        f.create_dataset("testsets", data=np.array([[store(t.T) for t in tests]], dtype=h5py.ref_dtype))
    # New protocol: global labels 1..5 for (1,1),(1,2),(1,3),(2,1),(2,2); train = people 1, 3, 5
    for kind in ("detected", "labeled"):
        names, labels = [], []
        for label, (pair, person) in enumerate([(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)], 1):
            for image in (1, 2, 6, 7):
                if pair == 1 and person == 2 and image >= 6:
                    continue
                names.append(f"{pair}_{person:03d}_{1 if image <= 5 else 2}_{image:02d}.png")
                labels.append(label)
        idx = np.arange(1, len(names) + 1)
        train = [i for i in idx if labels[i - 1] in (1, 3, 5)]
        query = [i for i in idx if labels[i - 1] in (2, 4) and names[i - 1].split("_")[3] in ("01.png", "06.png")]
        gallery = [i for i in idx if labels[i - 1] in (2, 4) and i not in query]
        filelist = np.empty((len(names), 1), dtype=object)
        for i, n in enumerate(names):
            filelist[i, 0] = n
        savemat(dataset_dir / f"cuhk03_new_protocol_config_{kind}.mat", {
            "filelist": filelist, "labels": np.array(labels, dtype=np.int32)[:, None],
            "train_idx": np.array(train, dtype=np.int32)[:, None],
            "query_idx": np.array(query, dtype=np.int32)[:, None],
            "gallery_idx": np.array(gallery, dtype=np.int32)[:, None]})
    return {"names": names, "labels": labels}


def test_cuhk03_new_protocol_from_mat(tmp_path):
    make_cuhk03(tmp_path)
    ds = load_dataset("cuhk03", tmp_path)  # detected, 767/700-style split
    d = tmp_path / "cuhk03"
    pngs = sorted(p.name for p in (d / "images_detected").glob("*.png"))
    # 5 people x 4 images, except (1, 2) with 2 -> 18 images
    assert len(pngs) == 18 and "1_002_2_06.png" not in pngs and "2_002_2_07.png" in pngs
    from PIL import Image

    assert Image.open(d / "images_detected" / "1_001_1_02.png").size == (6, 13)  # (w, h) of image 2
    assert ids(ds.train) == [0, 1, 2]  # labels 1, 3, 5 relabelled in order
    assert {(Path(s.path).name, s.pid) for s in ds.train if s.pid == 1} == {
        ("1_003_1_01.png", 1), ("1_003_1_02.png", 1), ("1_003_2_06.png", 1), ("1_003_2_07.png", 1)}
    assert ids(ds.query) == [2, 4] and cams(ds.query) == [0, 1]
    assert [Path(s.path).name for s in ds.query] == ["1_002_1_01.png", "2_001_1_01.png", "2_001_2_06.png"]
    assert all(Path(s.path).is_file() for s in ds.train + ds.query + ds.gallery)
    split_file = json.loads((d / "splits_new_detected.json").read_text())
    assert split_file[0]["num_train_pids"] == 3 and split_file[0]["train"][0][0].startswith("images_detected/")
    labeled = load_dataset("cuhk03", tmp_path, labeled=True)
    assert labeled.extra["kind"] == "labeled" and "images_labeled" in labeled.train[0].path


def test_cuhk03_classic_splits(tmp_path):
    make_cuhk03(tmp_path)
    ds = load_dataset("cuhk03", tmp_path, classic_split=True, split_id=1)
    # test set 2 = people (1, 3) and (2, 1); train = the other 3 people, numbered in order
    assert ds.extra["num_splits"] == 2
    assert ids(ds.train) == [0, 1, 2] and ids(ds.query) == [0, 1]
    assert ds.query == ds.gallery
    assert sorted({Path(s.path).name[:5] for s in ds.query}) == ["1_003", "2_001"]
    with pytest.raises(ValueError, match="split_id=5 out of range"):
        load_dataset("cuhk03", tmp_path, classic_split=True, split_id=5)


def test_cuhk03_reads_torchreid_json_with_moved_absolute_paths(tmp_path):
    d = tmp_path / "cuhk03"
    write_png(d / "images_labeled" / "1_001_1_01.png", 0)
    write_png(d / "images_labeled" / "1_001_2_06.png", 1)
    write_png(d / "images_labeled" / "2_004_1_02.png", 2)
    old = "/old/machine/data/cuhk03/images_labeled/"
    split = [{"train": [[old + "1_001_1_01.png", 0, 0], [old + "1_001_2_06.png", 0, 1]],
              "query": [[old + "2_004_1_02.png", 17, 0]], "gallery": [[old + "2_004_1_02.png", 17, 0]],
              "num_train_pids": 1}]
    (d / "splits_new_labeled.json").write_text(json.dumps(split))
    ds = load_dataset("cuhk03", tmp_path, labeled=True)  # no .mat files needed
    assert ds.train[1].path == str(d / "images_labeled" / "1_001_2_06.png")
    assert (ds.query[0].pid, ds.query[0].camid) == (17, 0)


def test_cuhk03_missing_mat(tmp_path):
    (tmp_path / "cuhk03").mkdir()
    with pytest.raises(DatasetLayoutError, match="cuhk-03.mat"):
        load_dataset("cuhk03", tmp_path)


# ---------------------------------------------------------------------------------------------
# Small datasets with random splits


def test_cuhk01_splits_seeded_and_written(tmp_path):
    campus = tmp_path / "cuhk01" / "campus"
    names = [f"{p:04d}{i:03d}.png" for p in range(1, 7) for i in range(1, 5)] + ["bad.png"]
    touch_images(campus, names)
    ds = load_dataset("cuhk01", tmp_path)
    split_file = tmp_path / "cuhk01" / "splits.json"
    splits = json.loads(split_file.read_text())
    assert len(splits) == 20 and splits[0]["seed"] == 0
    assert len(ids(ds.train)) == 3 and ids(ds.train) == [0, 1, 2]
    assert cams(ds.query) == [0] and cams(ds.gallery) == [1]  # images 1-2 view A, 3-4 view B
    assert len(ds.query) == 6 and len(ds.gallery) == 6
    test_ids = ids(ds.query)
    assert set(test_ids).isdisjoint({int(Path(s.path).name[:4]) - 1 for s in ds.train})
    odd = load_dataset("cuhk01", tmp_path, split_id=1)
    assert ids(odd.query) == test_ids and cams(odd.query) == [1]  # same split, views swapped
    # reproducible: delete and rebuild gives the same file; another seed another file
    before = split_file.read_text()
    split_file.unlink()
    load_dataset("cuhk01", tmp_path)
    assert split_file.read_text() == before
    other = load_dataset("cuhk01", tmp_path, split_seed=5)
    assert (tmp_path / "cuhk01" / "splits_seed5.json").is_file()
    assert other.extra["split_file"].endswith("splits_seed5.json")


def test_viper(tmp_path):
    base = tmp_path / "viper" / "VIPeR"
    touch_images(base / "cam_a", [f"{i:03d}_45.bmp" for i in range(6)])
    touch_images(base / "cam_b", [f"{i:03d}_90.bmp" for i in range(6)])
    ds = load_dataset("viper", tmp_path, split_id=0)
    assert len(ds.train) == 6 and ids(ds.train) == [0, 1, 2] and cams(ds.train) == [0, 1]
    # each train pair is the same index in cam_a and cam_b
    for pid in range(3):
        a, b = [Path(s.path).name[:3] for s in ds.train if s.pid == pid]
        assert a == b
    assert cams(ds.query) == [0] and cams(ds.gallery) == [1]
    assert [Path(q.path).name[:3] for q in ds.query] == [Path(g.path).name[:3] for g in ds.gallery]
    shutil.rmtree(base / "cam_b")
    with pytest.raises(DatasetLayoutError, match="cam_b"):
        load_dataset("viper", tmp_path)


def test_grid_uses_partitions_from_mat(tmp_path):
    from scipy.io import savemat
    base = tmp_path / "grid" / "underground_reid"
    touch_images(base / "probe", [f"{p:04d}_{(p % 8) + 1}_25004_107_32_130.jpeg" for p in range(1, 5)])
    touch_images(base / "gallery", [f"{p:04d}_{((p + 3) % 8) + 1}_25005_1_2_3.jpeg" for p in range(1, 5)]
                 + ["0000_1_25006_1_29_103.jpeg", "0000_2_25007_1_29_103.jpeg"])
    entries = np.empty((1, 2), dtype=object)
    for k, train in enumerate(([1, 3], [2, 4])):
        entries[0, k] = {"idx_test": np.array([[9]]), "idx_probe": np.array([[9]]),
                         "idx_train": np.array([train], dtype=np.float64)}
    savemat(base / "features_and_partitions.mat", {"trainIdxAll": entries})
    ds = load_dataset("grid", tmp_path, split_id=1)
    assert ids(ds.train) == [0, 1] and len(ds.train) == 4
    assert sorted(int(Path(s.path).name[:4]) for s in ds.train) == [2, 2, 4, 4]
    assert ids(ds.query) == [1, 3]
    assert ids(ds.gallery) == [0, 1, 3] and len(ds.gallery) == 4
    assert ds.query[0].camid == 1  # 0001_2_... -> camera 1 (0-based)


def test_prid_single_shot(tmp_path):
    base = tmp_path / "prid2011" / "prid_2011" / "single_shot"
    touch_images(base / "cam_a", [f"person_{i:04d}.png" for i in range(1, 7)])  # 1..4 shared, 5, 6 only A
    touch_images(base / "cam_b", [f"person_{i:04d}.png" for i in (1, 2, 3, 4, 10, 11, 12)])
    ds = load_dataset("prid", tmp_path, split_id=3)
    assert len(ds.train) == 4 and ids(ds.train) == [0, 1]
    test = ids(ds.query)
    assert len(test) == 2 and set(test) <= {1, 2, 3, 4}
    assert cams(ds.query) == [0] and cams(ds.gallery) == [1]
    assert ids(ds.gallery) == sorted(test + [10, 11, 12])
    stored = json.loads((tmp_path / "prid2011" / "splits_single_shot.json").read_text())
    assert len(stored) == 10 and sorted(stored[3]["train"] + stored[3]["test"]) == [1, 2, 3, 4]


def test_ilids(tmp_path):
    persons = tmp_path / "ilids" / "i-LIDS_Pedestrian" / "Persons"
    names = [f"{p:04d}{k:03d}.jpg" for p in range(1, 7) for k in range(1, 4)]
    touch_images(persons, names)
    ds = load_dataset("ilids", tmp_path)
    assert ids(ds.train) == [0, 1, 2] and len(ds.train) == 9
    assert len(ds.query) == 3 and len(ds.gallery) == 3
    assert ids(ds.query) == ids(ds.gallery)
    assert all(q.path != g.path for q in ds.query for g in ds.gallery)
    assert ds.query[0].camid == int(Path(ds.query[0].path).stem[4:7]) - 1


def test_reading_datasets_stays_light():
    import subprocess
    import sys

    code = ("import sys, omnireid.data.datasets, omnireid.data.summary; "
            "print(sorted(m for m in ('h5py', 'scipy', 'torch', 'torchvision', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
