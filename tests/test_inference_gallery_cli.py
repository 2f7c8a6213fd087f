"""`omnireid gallery add|remove|search|assign|info` and `omnireid calibrate`, end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from omnireid.cli import main
from omnireid.inference.gallery import Gallery
from omnireid.models import create_model, save_weights

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--input", "64x32"]


@pytest.fixture()
def people(tmp_path):
    """Four identity folders of three noise crops each, and a checkpoint of a tiny model."""
    rng = np.random.default_rng(0)
    root = tmp_path / "people"
    for person in ("ann", "bob", "cid", "dan"):
        (root / person).mkdir(parents=True)
        base = rng.integers(0, 256, (64, 32, 3))
        for i in range(3):
            noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(root / person / f"{i}.png")
    torch.manual_seed(0)
    weights = save_weights(create_model("osnet_x0_25", num_classes=4), tmp_path / "w.pth",
                           layout="torchreid")
    return root, weights


def test_gallery_commands(people, tmp_path, capsys) -> None:
    root, weights = people
    g = tmp_path / "g" / "people.npz"
    assert main(["gallery", "add", str(g), str(root / "ann"), str(root / "bob"),
                 "--label-from-folder", "--model", "osnet_x0_25", "--weights", str(weights),
                 *TINY, "--meta", "camera=1", "--meta", "time=morning"]) == 0
    assert "created" in capsys.readouterr().out
    gallery = Gallery.load(g)
    assert gallery.identities() == {"ann": 3, "bob": 3}
    assert gallery.entry_meta[0] == {"camera": 1, "time": "morning"}
    assert gallery.model["weights"] == str(weights.resolve())
    saved = np.load(g, allow_pickle=False)
    assert json.loads(str(saved["header"]))["meta"]["model"]["weights"] == "../w.pth"

    # a manifest adds labels and cameras
    manifest = root / "more.csv"
    manifest.write_text("path,pid,camid\ncid/0.png,cid,2\ncid/1.png,cid,3\n")
    assert main(["gallery", "add", str(g), "--manifest", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "updated" in out and "added 2 entries (ids 6..7)" in out
    assert Gallery.load(g).identities()["cid"] == 2

    assert main(["gallery", "info", str(g), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 8 and info["identities"] == 3 and info["index"] == "exact"
    assert main(["gallery", "info", str(g)]) == 0
    assert "sha256" in capsys.readouterr().out

    # search: a crop that is in the gallery comes back first, at distance ~0
    query = root / "bob" / "1.png"
    assert main(["gallery", "search", str(g), str(query), "--top", "3", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)[0]["matches"][0]
    assert first["label"] == "bob" and first["path"].endswith("bob/1.png")
    assert first["distance"] == pytest.approx(0.0, abs=1e-5)
    assert first["meta"] == {"camera": 1, "time": "morning"}

    # assign: a known crop keeps its identity; dan is new, and with --add-new joins the gallery
    stranger = root / "dan" / "0.png"
    argv = ["gallery", "assign", str(g), str(query), str(stranger), "--threshold", "1e-4",
            "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)["queries"]
    assert rows[0]["identity"] == "bob" and not rows[0]["new"]
    assert rows[1]["new"] and rows[1]["identity"] is None
    assert main(argv + ["--add-new"]) == 0
    rows = json.loads(capsys.readouterr().out)["queries"]
    assert rows[1]["new"] and rows[1]["identity"] == "person-8"
    assert main(argv) == 0  # now dan is known under that label
    assert json.loads(capsys.readouterr().out)["queries"][1]["identity"] == "person-8"
    assert main(["gallery", "assign", str(g), str(query)]) == 2
    assert "no same-person threshold" in capsys.readouterr().err

    # remove by identity and by id
    assert main(["gallery", "remove", str(g), "--label", "ann"]) == 0
    assert main(["gallery", "remove", str(g), "--id", "6"]) == 0
    left = Gallery.load(g)
    assert "ann" not in left.identities() and 6 not in left.ids and len(left) == 5
    assert main(["gallery", "remove", str(g), "--label", "zed"]) == 2
    assert "'zed'" in capsys.readouterr().err

    # the existing `search` command reads the same file, and `extract` writes one
    assert main(["search", "--gallery", str(g), str(query), "--top", "2", "--report",
                 str(tmp_path / "rep")]) == 0
    assert "bob/1.png" in capsys.readouterr().out
    x = tmp_path / "extracted.npz"
    assert main(["extract", str(root), "-o", str(x), "--model", "osnet_x0_25", "--weights",
                 str(weights), *TINY]) == 0
    assert main(["gallery", "add", str(x), str(root / "dan"), "--label", "dan"]) == 0
    capsys.readouterr()
    assert main(["gallery", "info", str(x), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 15 and info["unlabelled"] == 12 and info["identities"] == 1


def test_gallery_refuses_other_weights_and_broken_files(people, tmp_path, capsys) -> None:
    root, weights = people
    g = tmp_path / "people.npz"
    assert main(["gallery", "add", str(g), str(root / "ann"), "--label", "ann", "--model",
                 "osnet_x0_25", "--weights", str(weights), *TINY]) == 0
    torch.manual_seed(1)
    other = save_weights(create_model("osnet_x0_25", num_classes=4), tmp_path / "other.pth")
    capsys.readouterr()
    for argv in (["gallery", "search", str(g), str(root / "bob" / "0.png")],
                 ["gallery", "add", str(g), str(root / "bob")],
                 ["search", "--gallery", str(g), str(root / "bob" / "0.png")]):
        assert main(argv + ["--weights", str(other)]) == 2
        err = capsys.readouterr().err
        assert "embeddings of different models cannot be compared" in err and str(g) in err
    # random weights: refused unless asked for
    assert main(["gallery", "add", str(tmp_path / "r.npz"), str(root / "ann"), *TINY,
                 "--model", "osnet_x0_25"]) == 2
    assert "--weights" in capsys.readouterr().err
    # a truncated gallery is an error that names it, and `add` leaves it as it was
    data = g.read_bytes()
    g.write_bytes(data[: len(data) // 3])
    broken = g.read_bytes()
    assert main(["gallery", "add", str(g), str(root / "bob"), "--label", "bob"]) == 2
    err = capsys.readouterr().err
    assert str(g) in err and "truncated or corrupt" in err
    assert g.read_bytes() == broken
    assert main(["gallery", "info", str(g)]) == 2


def test_calibrate_then_assign_with_the_saved_threshold(people, tmp_path, capsys) -> None:
    root, weights = people
    report = tmp_path / "report"
    assert main(["calibrate", str(root), "--model", "osnet_x0_25", "--weights", str(weights),
                 *TINY, "--fpr", "0.1", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    # 4 people x 3 crops: 12 same-person and 54 different-person pairs
    assert "12 same-person pairs, 54 different-person pairs, 4 identities" in out
    assert "warning: calibration set too small for FPR 0.001" in out
    assert "warning: only 4 identities" in out
    # 54 pairs cannot measure FPR 0.1 on 10 false matches: the saved threshold says so
    assert "(FPR 0.1) (NOT reliable: set too small, see above) ->" in out
    cal_path = weights.with_name("w.pth.calibration.json")
    cal = json.loads(cal_path.read_text())
    assert cal["target_fpr"] == 0.1 and cal["model"]["weights_sha256"]
    assert (report / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((report / "calibration.json").read_text())["threshold"] == cal["threshold"]
    # assign finds the calibration beside the checkpoint
    g = tmp_path / "g.npz"
    assert main(["gallery", "add", str(g), str(root), "--label-from-folder", "--model",
                 "osnet_x0_25", "--weights", str(weights), *TINY]) == 0
    capsys.readouterr()
    assert main(["gallery", "assign", str(g), str(root / "ann" / "0.png")]) == 0
    out = capsys.readouterr().out
    assert f"threshold {cal['threshold']:.4f} from {cal_path}" in out and "ann" in out
    # attached to the gallery, the calibration travels with it
    assert main(["gallery", "add", str(g), str(root / "ann" / "1.png"), "--label", "ann",
                 "--calibration", str(cal_path)]) == 0
    capsys.readouterr()
    assert main(["gallery", "info", str(g), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["same_person"]["threshold"] == cal["threshold"]
    cal_path.unlink()
    assert main(["gallery", "assign", str(g), str(root / "ann" / "0.png")]) == 0
    assert "from the gallery's calibration (FPR 0.1)" in capsys.readouterr().out
    # a calibration of other weights is refused
    torch.manual_seed(1)
    other = save_weights(create_model("osnet_x0_25", num_classes=4), tmp_path / "o.pth")
    assert main(["calibrate", str(root), "--model", "osnet_x0_25", "--weights", str(other),
                 *TINY, "--report", str(report)]) == 0
    capsys.readouterr()
    assert main(["gallery", "assign", str(g), str(root / "ann" / "0.png"), "--calibration",
                 str(other.with_name("o.pth.calibration.json"))]) == 2
    assert "cannot be compared" in capsys.readouterr().err
    # bad rate and missing weights are clear errors
    with pytest.raises(SystemExit):
        main(["calibrate", str(root), "--fpr", "2"])
    assert main(["calibrate", str(root)]) == 2
    assert "--weights is required" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["eager", "fused"])
def test_extract_refuses_a_broken_checkpoint(people, tmp_path, capsys, backend) -> None:
    root, _ = people
    model = create_model("osnet_x0_25", num_classes=4)
    with torch.no_grad():
        model.conv1.conv.weight.fill_(float("nan"))
    weights = save_weights(model, tmp_path / "nan.pth")
    out = tmp_path / "g.npz"
    assert main(["extract", str(root / "ann"), "-o", str(out), "--model", "osnet_x0_25",
                 "--weights", str(weights), "--backend", backend, *TINY]) == 2
    err = capsys.readouterr().err
    # eager PyTorch gives NaN, the fused path all-zero embeddings: both are refused
    problem = "hold NaN or infinity" if backend == "eager" else "are all zeros"
    assert f"3 embedding(s) {problem} (e.g. 0.png)" in err and not out.exists()


def test_a_gallery_moves_with_its_crops_and_checkpoint(people, tmp_path, capsys) -> None:
    root, weights = people
    site = tmp_path / "site"
    shutil.copytree(root, site / "crops")
    shutil.copy(weights, site / "w.pth")
    assert main(["gallery", "add", str(site / "g.npz"), str(site / "crops" / "ann"),
                 "--label", "ann", "--model", "osnet_x0_25", "--weights", str(site / "w.pth"),
                 *TINY]) == 0
    moved = tmp_path / "elsewhere" / "site"
    moved.parent.mkdir()
    site.rename(moved)
    capsys.readouterr()
    assert main(["gallery", "search", str(moved / "g.npz"), str(moved / "crops/ann/2.png"),
                 "--json"]) == 0
    hit = json.loads(capsys.readouterr().out)[0]["matches"][0]
    g = Gallery.load(moved / "g.npz")
    assert g.model["weights"] == str((moved / "w.pth").resolve())
    assert g.full_path(int(g.rows_of([hit["id"]])[0])).resolve() == (moved / "crops/ann/2.png").resolve()


def test_calibrate_reads_a_registered_layout_and_a_manifest(people, tmp_path, capsys) -> None:
    """The same crops as a Market-style tree (`--dataset market_style`) and as a CSV manifest:
    crop 0 of each person seen by camera 1, crops 1 and 2 by camera 2. Cross-camera pairs,
    counted by hand: 4 people x 1 x 2 = 8 same-person, 4 x 8 - 8 = 24 different-person; the junk
    id -1 is left out."""
    root, weights = people
    tree = tmp_path / "market"
    rows = ["path,pid,camid"]
    for pid, person in enumerate(("ann", "bob", "cid", "dan"), start=1):
        for i in range(3):
            split, cam = ("query", 1) if i == 0 else ("gallery", 2)
            name = f"{split}/{pid:04d}_c{cam}s1_{i:06d}_00.jpg"
            (tree / split).mkdir(parents=True, exist_ok=True)
            Image.open(root / person / f"{i}.png").save(tree / name)
            rows.append(f"{name},{pid},{cam - 1}")
    (tree / "train").mkdir()
    Image.open(root / "ann" / "0.png").save(tree / "train" / "0009_c1s1_000001_00.jpg")
    Image.open(root / "bob" / "0.png").save(tree / "gallery" / "-1_c1s1_000009_00.jpg")
    (tree / "m.csv").write_text("\n".join(rows) + "\n")
    common = ["--model", "osnet_x0_25", "--weights", str(weights), *TINY, "--cross-camera",
              "--fpr", "0.1", "--report", str(tmp_path / "rep")]
    cals = []
    for source, extra in ((str(tree), ["--dataset", "market_style"]),
                          (str(tree / "m.csv"), [])):
        out_file = tmp_path / f"cal{len(cals)}.json"
        assert main(["calibrate", source, *extra, *common, "-o", str(out_file)]) == 0
        out = capsys.readouterr().out
        assert "on 12 images of 4 identities" in out
        assert "8 same-person pairs, 24 different-person pairs, 4 identities" in out
        cals.append(json.loads(out_file.read_text()))
    # same images, same model: the two routes agree (batches may differ: float rounding only)
    assert cals[0]["threshold"] == pytest.approx(cals[1]["threshold"], abs=1e-5)
    assert main(["calibrate", str(tree), "--dataset", "no_such_layout", *common]) == 2
    assert "no_such_layout" in capsys.readouterr().err
