"""Gallery files: embeddings of a folder of crops with their relative paths and provenance."""

from __future__ import annotations

import glob
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
                return cls(data["embeddings"], [str(p) for p in data["paths"]],
                           str(data["root"]), json.loads(str(data["meta"])))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path} is not an omnireid gallery file: {exc}") from None


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
