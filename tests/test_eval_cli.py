"""`omnireid eval` end to end on tiny Market-1501 / DukeMTMC-reID layout trees."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnireid.cli import main

from ._inference_helpers import plain_features

SIZE = "64x32"


def _person(pid: int, cam: int, k: int) -> Image.Image:
    rng = np.random.default_rng(pid * 100 + cam * 10 + k)
    base = np.array([(37 * pid) % 255, (91 * pid) % 255, (53 * pid) % 255], np.float64)
    pixels = base[None, None, :] + rng.normal(0, 25, (64, 32, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_tree(root: Path, folder: str, name_of) -> None:
    """4 identities: query on camera 1, gallery on cameras 1 and 2, plus a distractor (id 0)."""
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        (root / folder / split).mkdir(parents=True, exist_ok=True)
    for pid in range(1, 5):
        _person(pid, 1, 0).save(root / folder / "bounding_box_train" / name_of(pid + 10, 1, 0))
        _person(pid, 1, 9).save(root / folder / "query" / name_of(pid, 1, 9))
        for cam, k in ((2, 0), (2, 1), (1, 2)):
            _person(pid, cam, k).save(root / folder / "bounding_box_test" / name_of(pid, cam, k))
    _person(0, 2, 0).save(root / folder / "bounding_box_test" / name_of(0, 2, 0))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_tree(root, "market1501/Market-1501-v15.09.15",
              lambda p, c, k: f"{p:04d}_c{c}s1_{k:06d}_00.jpg")
    make_tree(root, "dukemtmc-reid/DukeMTMC-reID", lambda p, c, k: f"{p:04d}_c{c}_f{k:07d}.jpg")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    import torch

    from omnireid.models import create_model, save_weights

    torch.manual_seed(0)
    return save_weights(create_model("osnet_x0_25"), tmp_path_factory.mktemp("w") / "w.pth")


def test_cross_domain_tables_json_and_report(data_root, weights, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["eval", "--model", "osnet_x0_25", "--weights", str(weights),
               "--data", "market1501,dukemtmcreid", "--root", str(data_root), "--size", SIZE,
               "--num-vis", "3", "--output", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "market1501" in printed and "dukemtmcreid" in printed and "cross-domain" in printed
    assert str(out / "results.json") in printed and str(out / "index.html") in printed

    results = json.loads((out / "results.json").read_text())
    assert set(results["targets"]) == {"market1501", "dukemtmcreid"}

    # the numbers equal an independent run of the same steps
    from omnireid.data import load_dataset
    from omnireid.evaluation import compute_distance_matrix, evaluate_rank_reference
    from omnireid.models import create_model

    model = create_model("osnet_x0_25", weights=str(weights))
    for name in ("market1501", "dukemtmcreid"):
        ds = load_dataset(name, data_root)
        qf = plain_features(model, [s.path for s in ds.query], size=(64, 32))
        gf = plain_features(model, [s.path for s in ds.gallery], size=(64, 32))
        ref = evaluate_rank_reference(
            compute_distance_matrix(qf, gf),
            np.array([s.pid for s in ds.query]), np.array([s.pid for s in ds.gallery]),
            np.array([s.camid for s in ds.query]), np.array([s.camid for s in ds.gallery]),
        )
        got = results["targets"][name]
        assert got["mAP"] == pytest.approx(ref.mAP, abs=1e-6)
        assert got["rank1"] == pytest.approx(ref.rank(1), abs=1e-6)
        assert got["num_valid_queries"] == 4

    html = (out / "index.html").read_text()
    pictures = sorted((out / "ranked" / "market1501").glob("*.png"))
    assert len(pictures) == 3
    for p in pictures:
        assert f"ranked/market1501/{p.name}" in html
        assert Image.open(p).size[0] > 10 * 32  # query + 10 gallery thumbnails (7 kept here)


def test_rerank_flip_cosine(data_root, weights, tmp_path, capsys):
    out = tmp_path / "eval2"
    rc = main(["eval", "--model", "osnet_x0_25", "--weights", str(weights), "--data", "market1501",
               "--root", str(data_root), "--size", SIZE, "--rerank", "--flip", "--dist", "cosine",
               "--normalize", "--num-vis", "0", "--output", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["rerank"] and results["settings"]["flip"]
    assert 0.0 <= results["targets"]["market1501"]["mAP"] <= 1.0
    assert "rank-1" in capsys.readouterr().out


def test_missing_weights_and_unknown_dataset_are_clear_errors(data_root, tmp_path, capsys):
    rc = main(["eval", "--model", "osnet_x0_25", "--weights", str(tmp_path / "nope.pth"),
               "--data", "market1501", "--root", str(data_root), "--output", str(tmp_path / "o")])
    assert rc == 2 and "nope.pth" in capsys.readouterr().err
    rc = main(["eval", "--model", "osnet_x0_25", "--data", "no_such_set", "--root", str(data_root),
               "--size", SIZE, "--output", str(tmp_path / "o")])
    assert rc == 2 and "no_such_set" in capsys.readouterr().err


def test_data_without_cameras_uses_no_camera_protocol_and_says_so(weights, tmp_path, capsys):
    root = tmp_path / "people"
    for pid in range(1, 4):
        for split, ks in (("query", (9,)), ("gallery", (0, 1))):
            folder = root / split / f"person{pid}"
            folder.mkdir(parents=True)
            for k in ks:
                _person(pid, 1, k).save(folder / f"{k}.jpg")
    common = ["eval", "--model", "osnet_x0_25", "--weights", str(weights), "--data",
              "identity_folders", "--root", str(root), "--size", SIZE, "--num-vis", "0",
              "--output", str(tmp_path / "out")]
    assert main(common) == 0
    printed = capsys.readouterr().out
    assert "no camera ids" in printed and "no_camera" in printed
    assert main([*common, "--protocol", "market"]) == 2
    assert "same-camera filter cannot apply" in capsys.readouterr().err


def test_size_defaults_to_the_input_size_of_known_weights(data_root, weights, tmp_path, monkeypatch):
    """Weights registered as known at 32x16 are evaluated at 32x16 without --size; --size wins."""
    from omnireid.models.weights import KNOWN_WEIGHTS, KnownWeights, Preprocessing, sha256_of

    entry = KnownWeights("w-known.pth", sha256_of(weights), "osnet_x0_25", "tiny", 0,
                         Preprocessing((32, 16)))
    monkeypatch.setitem(KNOWN_WEIGHTS, entry.key, entry)
    common = ["eval", "--model", "osnet_x0_25", "--weights", str(weights), "--data", "market1501",
              "--root", str(data_root), "--num-vis", "0", "--backend", "eager"]
    assert main([*common, "--output", str(tmp_path / "a")]) == 0
    assert main([*common, "--output", str(tmp_path / "b"), "--size", SIZE]) == 0
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert a["settings"]["size"] == [32, 16] and b["settings"]["size"] == [64, 32]
    # the numbers are those of 32x16 inputs
    from omnireid.data import load_dataset
    from omnireid.evaluation import compute_distance_matrix, evaluate_rank_reference
    from omnireid.models import create_model

    model = create_model("osnet_x0_25", weights=str(weights))
    ds = load_dataset("market1501", data_root)
    d = compute_distance_matrix(plain_features(model, [s.path for s in ds.query], (32, 16)),
                                plain_features(model, [s.path for s in ds.gallery], (32, 16)))
    ref = evaluate_rank_reference(d, np.array([s.pid for s in ds.query]), np.array([s.pid for s in ds.gallery]),
                                  np.array([s.camid for s in ds.query]), np.array([s.camid for s in ds.gallery]))
    assert a["targets"]["market1501"]["mAP"] == pytest.approx(ref.mAP, abs=1e-6)
