"""Gallery files: embeddings of a folder of crops with their relative paths and provenance.

A gallery describes the weights that made it (``meta["weights"]`` absolute,
``meta["weights_relative"]`` relative to the gallery file, ``meta["weights_sha256"]``), so it can
be searched from any folder and refuses other weights (:func:`weights_for_search`). A gallery of
a model with random weights records ``meta["random_weights"] = True`` and is refused unless
allowed. Non-finite embeddings are refused when a gallery is made and when it is read.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omnireid.errors import DataError, MissingFileError, UsageError
from omnireid.files import atomic_write

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


@dataclass
class Gallery:
    """Embeddings of a set of images.

    Attributes:
        embeddings: ``(N, D)`` float32.
        paths: ``N`` image paths relative to ``root``.
        root: the folder the paths are relative to (absolute when written).
        meta: model name, weights, input size, normalisation, backend, failures ...
    """

    embeddings: np.ndarray
    paths: list[str]
    root: str = "."
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
        if self.embeddings.ndim != 2 or len(self.embeddings) != len(self.paths):
            raise UsageError(f"gallery: {self.embeddings.shape} embeddings for "
                             f"{len(self.paths)} paths")
        bad = np.flatnonzero(~np.isfinite(self.embeddings).all(axis=1))
        if len(bad):
            raise DataError(f"{len(bad)} of {len(self.paths)} gallery embedding(s) hold NaN or infinity "
                            f"(e.g. {self.paths[bad[0]]}); the model that made them is broken")

    def __len__(self) -> int:
        return len(self.paths)

    def full_path(self, i: int) -> Path:
        """Absolute path of image ``i``."""
        return Path(self.root) / self.paths[i]

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` (atomically): ``embeddings``, ``paths``, ``root``, ``meta`` (JSON)."""
        path = Path(path)
        with atomic_write(path, "wb") as fh:
            np.savez(fh, embeddings=self.embeddings, paths=np.array(self.paths, dtype=str),
                     root=np.array(str(self.root)), meta=np.array(json.dumps(self.meta)))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Gallery:
        """Read a gallery written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"gallery file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = (data["embeddings"], [str(p) for p in data["paths"]], str(data["root"]),
                          json.loads(str(data["meta"])))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path} is not an omnireid gallery file: {exc}") from None
        try:
            return cls(*arrays)
        except (DataError, UsageError) as exc:
            raise DataError(f"{path}: {exc}") from None


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_record(weights: str | os.PathLike | None, gallery_path: str | os.PathLike) -> dict:
    """What a gallery records about the weights that made it: the absolute path, the path
    relative to the gallery file, the sha256, or ``random_weights: True`` without weights."""
    if weights is None:
        return {"weights": None, "random_weights": True}
    weights = Path(weights).resolve()
    return {"weights": str(weights),
            "weights_relative": os.path.relpath(weights, Path(gallery_path).resolve().parent),
            "weights_sha256": file_sha256(weights), "random_weights": False}


def weights_for_search(gallery: Gallery, gallery_path: str | os.PathLike, weights: str | os.PathLike | None,
                       allow_random: bool = False) -> str | None:
    """The checkpoint to embed queries for ``gallery`` with: ``weights`` when given, else the one
    the gallery records (looked up beside the gallery first, then at its absolute path).

    Raises:
        DataError: the gallery was made with random weights (unless ``allow_random``), the
            recorded checkpoint cannot be found, or the checkpoint's sha256 differs from the
            gallery's (other weights give embeddings that cannot be compared with it).
    """
    meta, where = gallery.meta, Path(gallery_path)
    if meta.get("random_weights") or ("weights" in meta and meta["weights"] is None):
        if not allow_random:
            raise DataError(f"{where} was made with random weights (extract without --weights): its "
                            "embeddings identify nobody. Re-extract it with --weights, or allow it "
                            "explicitly (--allow-random-weights)")
        if weights is None:
            raise DataError(f"{where} was made with random weights, which cannot be made again for the "
                            "queries; search it with --weights of the model, or re-extract it with --weights")
        return str(weights)
    recorded = meta.get("weights_sha256")
    if weights is None:
        candidates = [where.resolve().parent / meta["weights_relative"]] if meta.get("weights_relative") else []
        candidates += [Path(meta["weights"])] if meta.get("weights") else []
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DataError(f"{where}: the checkpoint it was made with is not there "
                            f"({', '.join(map(str, candidates)) or 'none recorded'}); give it with --weights")
        weights = found
    if recorded and file_sha256(weights) != recorded:
        raise DataError(f"{where} was made with other weights than {weights} (sha256 {recorded[:12]}... "
                        "recorded); its embeddings cannot be compared with this model's. Search it with "
                        "the checkpoint that made it, or re-extract it")
    return str(weights)


def find_images(source: str | os.PathLike) -> tuple[Path, list[str]]:
    """Images under a folder (recursively) or matching a glob pattern, sorted.

    Returns:
        ``(root, relative_paths)``: the folder (or the glob's fixed leading folder) and the
        sorted image paths relative to it.
    """
    text = str(source)
    if os.path.isdir(text):
        root = Path(text)
        files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    elif glob.has_magic(text):
        parts = Path(text).parts
        fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]]
        root = Path(*fixed) if fixed else Path(".")
        files = [Path(p) for p in glob.glob(text, recursive=True) if os.path.isfile(p)]
    elif os.path.isfile(text):
        root = Path(text).parent
        files = [Path(text)]
    else:
        raise MissingFileError(f"no such folder, file or glob match: {text}")
    rel = sorted(os.path.relpath(p, root) for p in files)
    return root.resolve(), rel
