"""Tiny on-disk data for the robustness and cross-domain tests: CSV manifests and a Market-1501
tree of small JPEGs, written in a fraction of a second."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import yaml
from PIL import Image


def person_jpeg(pid: int, cam: int, k: int, size: tuple[int, int] = (32, 64)) -> bytes:
    """A 32x64 JPEG whose colours depend on the identity (so training has something to learn)."""
    rng = np.random.default_rng(1000 * pid + 10 * cam + k)
    base = np.array([(pid * 53) % 256, (pid * 97) % 256, (pid * 31) % 256], dtype=np.int16)
    arr = np.clip(base + rng.integers(-40, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_manifest(folder: Path, ids: range, *, per_cam: int = 2, cams: int = 2, split: str | None = None,
                   name: str = "m.csv", test_ids: range | None = None) -> Path:
    """``folder/name`` listing ``images/P_C_K.jpg`` rows; ``split`` fixes the split column of
    every training row; ``test_ids`` get query (camera 0) / gallery (other cameras) rows."""
    rows = ["path,pid,camid" + (",split" if split or test_ids is not None else "")]
    for pid in [*ids, *(test_ids or [])]:
        for cam in range(cams):
            for k in range(per_cam):
                rel = f"images/{pid:04d}_{cam}_{k}.jpg"
                path = folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(person_jpeg(pid, cam, k))
                if test_ids is not None and pid in test_ids:
                    row_split = "query" if cam == 0 else "gallery"
                else:
                    row_split = split or ("train" if test_ids is not None else None)
                rows.append(f"{rel},{pid},{cam}" + (f",{row_split}" if row_split else ""))
    manifest = folder / name
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def write_market1501(root: Path, train_ids: range, test_ids: range, cams: int = 3) -> Path:
    """``root/market1501/{bounding_box_train,query,bounding_box_test}`` in Market-1501's naming."""
    base = root / "market1501"
    for folder, ids, shots in (("bounding_box_train", train_ids, 2), ("query", test_ids, 1),
                               ("bounding_box_test", test_ids, 2)):
        out = base / folder
        out.mkdir(parents=True, exist_ok=True)
        for pid in ids:
            for cam in range(1, cams + 1):
                if folder == "query" and cam != 1:
                    continue
                if folder == "bounding_box_test" and cam == 1:
                    continue
                for k in range(shots):
                    (out / f"{pid:04d}_c{cam}s1_{k:06d}_00.jpg").write_bytes(person_jpeg(pid, cam, k))
    return root


def tiny_train_recipe(out: Path, sources: list, targets: list, **sections) -> dict:
    """osnet_x0_25 at 64x32, two short epochs, one thread, no workers."""
    recipe = {
        "model": {"name": "osnet_x0_25"},
        "data": {"sources": sources, "targets": targets, "height": 64, "width": 32, "batch_size": 8,
                 "sampler": "random", "num_workers": 0},
        "optim": {"name": "amsgrad", "lr": 0.003},
        "sched": {"name": "constant"},
        "train": {"max_epoch": 2, "max_steps_per_epoch": 2, "output_dir": str(out), "progress": False,
                  "eval_freq": 0, "num_threads": 1, "channels_last": False, "save_curves": False},
        "test": {"batch_size": 16},
    }
    for section, values in sections.items():
        recipe.setdefault(section, {}).update(values)
    return recipe


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path
