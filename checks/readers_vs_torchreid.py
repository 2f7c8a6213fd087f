"""Check that our readers give torchreid's ids, cameras and query/gallery lists on the same files.

Builds small trees in each real layout (clean names only: torchreid crashes on malformed ones),
reads each with torchreid 0.2.5 (in its own environment, see bench_loader.py) and with omnireid,
and compares the (file, pid, camid) lists split by split. For the datasets with random splits
torchreid writes its split file first and omnireid reads that same file. CUHK03 is extracted from
a cuhk-03.mat by each library separately (torchreid's missing ``scipy.misc.imsave`` is supplied
with PIL) and the results compared.

Usage: PYTHONPATH=src python checks/readers_vs_torchreid.py [--torchreid-python PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent))

CHILD = r'''
import json, sys
import numpy as np
from PIL import Image
import scipy.misc
scipy.misc.imsave = lambda path, arr: Image.fromarray(np.asarray(arr)).save(path)
from torchreid.reid.data import datasets as D
root, specs = sys.argv[1], json.loads(sys.argv[2])
out = {}
for key, (cls, kw) in specs.items():
    ds = getattr(D.image, cls)(root=root, verbose=False, **kw)
    out[key] = {s: [[str(x[0]), int(x[1]), int(x[2])] for x in getattr(ds, s)] for s in ("train", "query", "gallery")}
print(json.dumps(out))
'''


def jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.new("RGB", (8, 16), (10, 20, 30)).save(path)


def build(root: Path) -> None:
    m = root / "market1501" / "Market-1501-v15.09.15"
    for name in ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c3s3_077419_03.jpg",
                 "0010_c6s4_002427_02.jpg", "0010_c1s1_000000_01.jpg", "0100_c4s1_000001_01.jpg"]:
        jpeg(m / "bounding_box_train" / name)
    for name in ["0001_c1s1_001051_00.jpg", "0003_c2s1_000100_00.jpg"]:
        jpeg(m / "query" / name)
    for name in ["-1_c1s1_000401_03.jpg", "0000_c1s1_000151_01.jpg", "0001_c2s1_000200_01.jpg",
                 "0003_c5s1_000300_01.jpg", "0000_c6s1_000152_01.jpg"]:
        jpeg(m / "bounding_box_test" / name)
    jpeg(m / "images" / "0000_c2s1_900000_00.jpg")
    d = root / "dukemtmc-reid" / "DukeMTMC-reID"
    for sub, names in (("bounding_box_train", ["0001_c2_f0046182.jpg", "0001_c8_f0046183.jpg", "0005_c1_f1.jpg"]),
                       ("query", ["0005_c2_f0046985.jpg"]),
                       ("bounding_box_test", ["0002_c1_f0044158.jpg", "0005_c5_f1.jpg"])):
        for n in names:
            jpeg(d / sub / n)
    ms = root / "msmt17" / "MSMT17_V1"
    lists = {"train": ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0001/0001_000_15_0303noon_0001_1.jpg 1"],
             "val": ["0001/0001_001_03_0303noon_0002_1.jpg 1"],
             "query": ["0000/0000_000_07_0303morning_0017_0.jpg 0"],
             "gallery": ["0000/0000_001_02_0303morning_0018_0.jpg 0", "0002/0002_000_11_0303afternoon_0001_0.jpg 2"]}
    (ms / "train").mkdir(parents=True)
    (ms / "test").mkdir(parents=True)
    for k, lines in lists.items():
        (ms / f"list_{k}.txt").write_text("\n".join(lines) + "\n")
    for p in range(1, 7):
        for i in range(1, 5):
            jpeg(root / "cuhk01" / "campus" / f"{p:04d}{i:03d}.png")
    for i in range(6):
        jpeg(root / "viper" / "VIPeR" / "cam_a" / f"{i:03d}_45.bmp")
        jpeg(root / "viper" / "VIPeR" / "cam_b" / f"{i:03d}_90.bmp")
    for i in range(1, 201):
        jpeg(root / "prid2011" / "prid_2011" / "single_shot" / "cam_a" / f"person_{i:04d}.png")
    for i in range(1, 750):
        jpeg(root / "prid2011" / "prid_2011" / "single_shot" / "cam_b" / f"person_{i:04d}.png")
    persons = root / "ilids" / "i-LIDS_Pedestrian" / "Persons"
    k = 0
    for p in range(1, 120):
        for s in range(1, 5 if p <= 119 - 0 else 3):
            if k < 476:
                jpeg(persons / f"{p:04d}{s:03d}.jpg")
                k += 1
    from scipy.io import savemat

    g = root / "grid" / "underground_reid"
    for p in range(1, 251):
        jpeg(g / "probe" / f"{p:04d}_{p % 8 + 1}_25004_107_32_130.jpeg")
        jpeg(g / "gallery" / f"{p:04d}_{(p + 3) % 8 + 1}_25005_1_2_3.jpeg")
    for j in range(5):
        jpeg(g / "gallery" / f"0000_{j + 1}_2600{j}_1_29_103.jpeg")
    rng = np.random.default_rng(0)
    entries = np.empty((1, 10), dtype=object)
    for s in range(10):
        train = np.sort(rng.choice(np.arange(1, 251), 125, replace=False))
        entries[0, s] = {"a": np.array([[0]]), "b": np.array([[0]]), "idx_train": train[None, :].astype(np.float64)}
    savemat(g / "features_and_partitions.mat", {"trainIdxAll": entries})
    from tests.test_data_readers import make_cuhk03

    make_cuhk03(root)


SPECS = {
    "market1501": ("Market1501", {}),
    "market1501_500k": ("Market1501", {"market1501_500k": True}),
    "dukemtmcreid": ("DukeMTMCreID", {}),
    "msmt17": ("MSMT17", {}),
    "msmt17_combineall": ("MSMT17", {"combineall": True}),
    "cuhk01": ("CUHK01", {"split_id": 3}),
    "viper": ("VIPeR", {"split_id": 5}),
    "grid": ("GRID", {"split_id": 2}),
    "prid": ("PRID", {"split_id": 1}),
    "ilids": ("iLIDS", {"split_id": 4}),
    "cuhk03": ("CUHK03", {}),
    "cuhk03_labeled": ("CUHK03", {"cuhk03_labeled": True}),
    "cuhk03_classic": ("CUHK03", {"cuhk03_classic_split": True, "split_id": 1}),
}
OURS = {
    "market1501": ("market1501", {}), "market1501_500k": ("market1501", {"market1501_500k": True}),
    "dukemtmcreid": ("dukemtmcreid", {}), "msmt17": ("msmt17", {}),
    "msmt17_combineall": ("msmt17", {"combineall": True}), "cuhk01": ("cuhk01", {"split_id": 3}),
    "viper": ("viper", {"split_id": 5}), "grid": ("grid", {"split_id": 2}), "prid": ("prid", {"split_id": 1}),
    "ilids": ("ilids", {"split_id": 4}), "cuhk03": ("cuhk03", {}), "cuhk03_labeled": ("cuhk03", {"labeled": True}),
    "cuhk03_classic": ("cuhk03", {"classic_split": True, "split_id": 1}),
}


def rel(path: str, *roots: Path) -> str:
    """Path relative to whichever root holds it (torchreid's split files hold absolute paths)."""
    p = Path(path).resolve()
    for root in roots:
        if p.is_relative_to(root.resolve()):
            return str(p.relative_to(root.resolve()))
    return str(p)


def same_up_to_relabel(a: list, b: list) -> bool:
    """Same files and cameras, and the training ids differ only by a one-to-one renumbering."""
    if [(x[0], x[2]) for x in a] != [(x[0], x[2]) for x in b]:
        return False
    forward, backward = {}, {}
    for (_, pa, _), (_, pb, _) in zip(a, b):
        if forward.setdefault(pa, pb) != pb or backward.setdefault(pb, pa) != pa:
            return False
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--torchreid-python", default="/work/venv-torchreid/bin/python")
    args = p.parse_args()
    from omnireid.data import load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        theirs_root, ours_root = Path(tmp) / "torchreid", Path(tmp) / "omnireid"
        build(theirs_root)
        shutil.copytree(theirs_root, ours_root)
        out = subprocess.run([args.torchreid_python, "-c", CHILD, str(theirs_root), json.dumps(SPECS)],
                             capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-4000:])
            return 1
        theirs = json.loads(out.stdout.strip().splitlines()[-1])
        # the random-split datasets: read the split files torchreid wrote
        for name in ("cuhk01/splits.json", "viper/splits.json", "grid/splits.json",
                     "prid2011/splits_single_shot.json", "ilids/splits.json"):
            shutil.copy(theirs_root / name, ours_root / name)
        failures = relabelled = 0
        for key, (name, kw) in OURS.items():
            combineall = kw.pop("combineall", False)
            ds = load_dataset(name, ours_root, combineall=combineall, **kw)
            for split in ("train", "query", "gallery"):
                a = sorted((rel(p_, theirs_root), pid, cam) for p_, pid, cam in theirs[key][split])
                b = sorted((rel(s.path, ours_root, theirs_root), s.pid, s.camid) for s in getattr(ds, split))
                if a == b:
                    verdict = "same"
                elif split == "train" and same_up_to_relabel(a, b):
                    verdict = "same images/cameras/identities; training ids numbered differently"
                    relabelled += 1
                else:
                    verdict = "DIFFERENT"
                    failures += 1
                print(f"{key:18s} {split:8s} torchreid {len(a):4d}  omnireid {len(b):4d}  {verdict}")
                if verdict == "DIFFERENT":
                    print("   only torchreid:", sorted(set(a) - set(b))[:5], "\n   only omnireid:", sorted(set(b) - set(a))[:5])
        from PIL import Image

        pngs = sorted((theirs_root / "cuhk03").glob("images_*/*.png"))
        pixel_diffs = sum(
            not np.array_equal(np.asarray(Image.open(p_)), np.asarray(Image.open(ours_root / p_.relative_to(theirs_root))))
            for p_ in pngs)
        print(f"cuhk03: {len(pngs)} extracted images compared pixel by pixel, {pixel_diffs} differ")
        failures += pixel_diffs
        print(f"{failures} split(s) differ; {relabelled} training split(s) identical up to the numbering of ids")
        return int(failures > 0)


if __name__ == "__main__":
    sys.exit(main())
