"""`omnireid extract`, `search` and `bench`, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omnireid.cli import main
from omnireid.inference.gallery import Gallery
from omnireid.models import create_model, save_weights

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def crops(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "crops"
    (folder / "cam1").mkdir(parents=True)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)).save(
            folder / "cam1" / f"{i:04d}.png")
    (folder / "cam1" / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("ignored")
    torch.manual_seed(0)
    weights = save_weights(create_model("osnet_x0_25", num_classes=3), tmp_path / "w.pth",
                           layout="torchreid")
    return folder, weights


def test_extract_then_search(crops, tmp_path, capsys) -> None:
    folder, weights = crops
    out = tmp_path / "gallery.npz"
    args = ["extract", str(folder), "-o", str(out), "--model", "osnet_x0_25",
            "--weights", str(weights), "--input", "64x32", "--batch-size", "2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "embedded 5 of 6 images" in text and "cam1/broken.jpg" in text
    # the default backend is auto: it says what it chose, and the gallery records that
    assert "backend auto:" in text and "precision fp32" in text
    gallery = Gallery.load(out)
    assert gallery.paths == [f"cam1/{i:04d}.png" for i in range(5)]
    assert gallery.embeddings.shape == (5, 512)
    np.testing.assert_allclose(np.linalg.norm(gallery.embeddings, axis=1), 1.0, atol=1e-5)
    assert gallery.model["model"] == "osnet_x0_25"
    assert gallery.model["weights"] == str(weights.resolve())
    from omnireid.models.weights import sha256_of

    assert gallery.model["weights_sha256"] == sha256_of(weights)
    assert gallery.model["backend"] in ("fused", "onnxruntime", "openvino")  # auto: an exact path
    assert gallery.meta["precision"] == "fp32"
    assert gallery.meta["failed"][0]["path"] == "cam1/broken.jpg"
    assert json.loads(out.with_suffix(".json").read_text())["images"] == 5

    # --strict: the unreadable file is fatal and named
    assert main(args[:3] + [str(tmp_path / "g2.npz")] + args[4:] + ["--strict"]) == 2
    assert "broken.jpg" in capsys.readouterr().err

    # a glob, in micro-batches of 2 images: the same embeddings
    assert main(["extract", str(folder / "cam1" / "*.png"), "-o", str(tmp_path / "g3.npz"),
                 "--model", "osnet_x0_25", "--weights", str(weights), "--input", "64x32",
                 "--micro-batch", "2", "--backend", "onnxruntime", "--workers", "2"]) == 0
    g3 = Gallery.load(tmp_path / "g3.npz")
    assert g3.paths == [f"{i:04d}.png" for i in range(5)]
    np.testing.assert_allclose(g3.embeddings, gallery.embeddings, atol=1e-5)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["extract", str(folder), "-o", str(tmp_path / "g4.npz"), "--micro-batch", "none"])
    assert "--micro-batch" in capsys.readouterr().err

    query = folder / "cam1" / "0003.png"
    report = tmp_path / "report"
    for index in ("exact", "faiss-flat"):
        assert main(["search", "--gallery", str(out), str(query), "--top", "3",
                     "--report", str(report), "--index", index]) == 0
        lines = capsys.readouterr().out.splitlines()
        # the query itself is in the gallery: it must come first with similarity 1
        first = lines[next(i for i, t in enumerate(lines) if t.startswith("query ")) + 3].split()
        assert first[0] == "1" and first[2] == "cam1/0003.png"
        assert float(first[1]) == pytest.approx(1.0, abs=1e-4)
        results = json.loads((report / "results.json").read_text())
        assert len(results["queries"][0]["matches"]) == 3
    with Image.open(report / "ranked.png") as img:
        assert img.width > 4 * 64 and img.height >= 64
    assert "0003.png" in (report / "index.html").read_text()
    assert main(["search", "--gallery", str(out), str(tmp_path / "nope.png")]) == 2


def test_bench_tiny(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", "osnet_x0_25", "--batch-sizes", "2", "--input", "64x32",
                 "--backends", "eager,fused", "--rounds", "1", "--json", str(out),
                 # a small ceiling matrix: bf16 products are emulated (slow) on CPUs without bf16
                 "--ceiling-size", "128"]) == 0
    text = capsys.readouterr().out
    assert "images/s" in text and "fused" in text
    rows = json.loads(out.read_text())["rows"]
    assert {r["backend"] for r in rows} == {"eager", "fused"}
    assert all(r["images_per_s"] > 0 for r in rows)
    fused = next(r for r in rows if r["backend"] == "fused")
    assert fused["max_abs_diff"] < 1e-4
    # GMAC/s is the model's multiply-adds per image times images/s
    from omnireid.models import model_complexity

    macs = model_complexity(create_model("osnet_x0_25"), (64, 32)).mult_adds
    assert fused["gmacs_per_s"] == pytest.approx(fused["images_per_s"] * macs / 1e9)
    assert "matrix-product ceilings" in text
    result = json.loads(out.read_text())
    rates = result["matmul_gmacs_per_s"]
    assert set(rates) == {"fp32", "bf16", "int8"}  # int8: torch._int_mm or ONNX Runtime
    # each path's share is of the ceiling of its own arithmetic
    assert fused["precision"] == "fp32"
    assert fused["ceiling_share"] == pytest.approx(fused["gmacs_per_s"] / rates["fp32"])
    # auto leaves eager out while any other exact path exists
    assert result["auto"]["2"] == {"fp32": "fused", "bf16": "fused", "int8": "fused"}


def test_bench_runs_each_batch_size_with_the_streams_auto_would_use(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    before = torch.get_num_threads()
    try:
        assert main(["bench", "--model", "osnet_x0_25", "--batch-sizes", "2,8", "--input", "64x32",
                     "--backends", "openvino,onnxruntime", "--rounds", "1", "--threads", "2", "--json",
                     str(out), "--ceiling-size", "128"]) == 0
        rows = {(r["backend"], r["batch"]): r for r in json.loads(out.read_text())["rows"]}
        # batch 2 on 2 threads: one stream; batch 8: a stream per thread (4 images each) for
        # OpenVINO; ONNX Runtime and the PyTorch paths keep one
        assert rows[("openvino", 2)]["streams"] == 1 and rows[("openvino", 8)]["streams"] == 2
        assert rows[("onnxruntime", 8)]["streams"] == 1 and rows[("eager", 8)]["streams"] == 1
        assert all(r["max_abs_diff"] < 1e-4 for r in rows.values())
        assert " streams " in capsys.readouterr().out
        assert main(["bench", "--model", "osnet_x0_25", "--batch-sizes", "8", "--input", "64x32",
                     "--backends", "openvino", "--rounds", "1", "--threads", "2", "--json", str(out),
                     "--ceiling-size", "128", "--streams", "1"]) == 0
        assert {r["streams"] for r in json.loads(out.read_text())["rows"]} == {1}
        assert main(["bench", "--streams", "0"]) == 2
        assert "--streams '0'" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


def test_galleries_describe_their_weights(crops, tmp_path, capsys, monkeypatch) -> None:
    """A gallery records its checkpoint (path relative to itself, sha256), is searched with it
    from any folder, refuses other weights, random weights and non-finite embeddings."""
    folder, weights = crops
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "w.pth").write_bytes(weights.read_bytes())
    query = str(folder / "cam1" / "0001.png")
    # extract with a relative --weights path, search from another folder
    assert main(["extract", str(folder), "-o", "g.npz", "--model", "osnet_x0_25", "--weights", "w.pth",
                 "--input", "64x32"]) == 0
    record = Gallery.load(work / "g.npz").model
    assert record["random_weights"] is False and Path(record["weights"]) == (work / "w.pth").resolve()
    with np.load(work / "g.npz") as raw:  # stored relative to the gallery file
        assert json.loads(str(raw["header"]))["meta"]["model"]["weights"] == "w.pth"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["search", "--gallery", str(work / "g.npz"), query, "--report", "rep"]) == 0
    lines = capsys.readouterr().out.splitlines()
    first = lines[next(i for i, t in enumerate(lines) if t.startswith("query ")) + 3].split()
    assert first[2] == "cam1/0001.png"
    # the gallery moved together with its checkpoint: found beside it
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("g.npz", "w.pth"):
        (work / name).rename(moved / name)
    assert main(["search", "--gallery", str(moved / "g.npz"), query, "--report", "rep"]) == 0
    capsys.readouterr()
    # other weights are refused, naming the gallery
    torch.manual_seed(1)
    other = save_weights(create_model("osnet_x0_25", num_classes=3), tmp_path / "other.pth", layout="torchreid")
    assert main(["search", "--gallery", str(moved / "g.npz"), query, "--weights", str(other)]) == 2
    err = capsys.readouterr().err
    assert str(moved / "g.npz") in err and "sha256" in err
    # no --weights at extraction: refused unless allowed, and such a gallery is refused at search
    assert main(["extract", str(folder), "-o", "r.npz", "--model", "osnet_x0_25", "--input", "64x32"]) == 2
    assert "--weights is required" in capsys.readouterr().err and not (elsewhere / "r.npz").exists()
    assert main(["extract", str(folder), "-o", "r.npz", "--model", "osnet_x0_25", "--input", "64x32",
                 "--allow-random-weights"]) == 0
    capsys.readouterr()
    assert main(["search", "--gallery", "r.npz", query]) == 2
    assert "r.npz was made with a model with random weights" in capsys.readouterr().err
    # non-finite embeddings: refused when read, naming the file
    broken = Gallery.load(moved / "g.npz")
    broken.embeddings[2] = np.nan  # behind the gallery's back: save() does not look again
    broken.save(tmp_path / "nan.npz")
    assert main(["search", "--gallery", str(tmp_path / "nan.npz"), query]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nan.npz'}: gallery: 1 embedding(s) hold NaN or infinity" in err
    with pytest.raises(Exception, match="hold NaN or infinity"):
        Gallery(np.full((1, 4), np.inf), ["a.jpg"])


def test_a_gallery_of_another_dimension_says_the_gallery_and_model_disagree(crops, tmp_path, capsys) -> None:
    folder, weights = crops
    out = tmp_path / "g.npz"
    assert main(["extract", str(folder / "cam1" / "0000.png"), "-o", str(out), "--model", "osnet_x0_25",
                 "--weights", str(weights), "--input", "64x32"]) == 0
    g = Gallery.load(out)
    Gallery(np.ones((1, 100), np.float32) / 10.0, g.paths, g.root, g.meta).save(out)
    capsys.readouterr()
    assert main(["search", "--gallery", str(out), str(folder / "cam1" / "0001.png"),
                 "--report", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert f"{out} holds 100-d embeddings but osnet_x0_25 gives 512-d ones: the gallery and the model disagree" in err
