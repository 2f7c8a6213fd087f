"""Which model made an embedding: a small record kept with galleries and calibrations.

Embeddings from different weights (or another input size or normalisation) live in different
spaces; comparing them gives confident nonsense. Galleries and calibrated thresholds therefore
record the model that made them (name, checkpoint sha256, input size, mean/std) and are refused by
any other. A model with random weights (no checkpoint) cannot be identified at all; its embeddings
are refused unless the caller allows them explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from omnireid.errors import CheckpointError
from omnireid.inference.extractor import FeatureExtractor
from omnireid.models.weights import sha256_of

_DIGESTS: dict[tuple[str, int, int], str] = {}


class ModelMismatchError(CheckpointError):
    """Embeddings, a gallery or a threshold made by one model met another model."""


def weights_digest(path: str | os.PathLike) -> str:
    """sha256 of a checkpoint file (cached per path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_of(p)
    return _DIGESTS[key]


def model_record(extractor: Any, relative_to: str | os.PathLike | None = None) -> dict[str, Any]:
    """What identifies the embeddings of a :class:`~omnireid.inference.FeatureExtractor`.

    Args:
        extractor: the extractor (reads ``model_name``, ``weights``, ``size``, ``mean``, ``std``,
            ``normalize``, ``backend``).
        relative_to: a folder; the weights path is stored relative to it (so that a gallery and
            its checkpoint can move together), and absolute when that is impossible.

    Returns:
        ``{"model", "weights", "weights_name", "weights_sha256", "random_weights", "input",
        "mean", "std", "normalized", "backend"}``.
    """
    weights = getattr(extractor, "weights", None)
    path = sha = name = None
    if weights is not None:
        wp = Path(weights)
        sha = weights_digest(wp)
        name = wp.name
        path = str(wp.resolve())
        if relative_to is not None:
            try:
                path = os.path.relpath(wp.resolve(), Path(relative_to).resolve())
            except ValueError:  # another drive on Windows
                pass
    return {
        "model": extractor.model_name,
        "weights": path,
        "weights_name": name,
        "weights_sha256": sha,
        "random_weights": weights is None,
        "input": [int(v) for v in extractor.size],
        "mean": [float(v) for v in extractor.mean],
        "std": [float(v) for v in extractor.std],
        "normalized": bool(extractor.normalize),
        "backend": getattr(extractor, "backend", None),
    }


def _describe(record: dict[str, Any]) -> str:
    if record.get("random_weights") or not record.get("weights_sha256"):
        weights = "random weights"
    else:
        weights = f"weights {record.get('weights_name')} (sha256 {record['weights_sha256'][:12]})"
    size = "x".join(str(v) for v in record.get("input", []))
    return f"{record.get('model')} with {weights}, input {size}"


def model_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The fields in which two model records differ in a way that changes the embeddings."""
    diffs = []
    if recorded.get("model") != current.get("model"):
        diffs.append(f"model {recorded.get('model')} vs {current.get('model')}")
    if recorded.get("weights_sha256") != current.get("weights_sha256"):
        diffs.append("checkpoint (sha256 "
                     f"{str(recorded.get('weights_sha256'))[:12]} vs "
                     f"{str(current.get('weights_sha256'))[:12]})")
    if list(recorded.get("input", [])) != list(current.get("input", [])):
        diffs.append(f"input size {recorded.get('input')} vs {current.get('input')}")
    for key in ("mean", "std"):
        a, b = recorded.get(key), current.get(key)
        if a is not None and b is not None and not np.allclose(a, b, atol=1e-6):
            diffs.append(f"{key} {a} vs {b}")
    return diffs


def check_same_model(recorded: dict[str, Any], current: dict[str, Any], what: str,
                     allow_random: bool = False) -> None:
    """Raise :class:`ModelMismatchError` unless ``current`` makes the embeddings ``recorded``
    describes.

    Args:
        recorded: the record stored with ``what`` (a gallery, a calibration file).
        current: the record of the model about to be used.
        what: names the file in the message, e.g. ``"gallery people.npz"``.
        allow_random: accept records of models with random weights (which no checksum can
            identify).
    """
    diffs = model_differences(recorded, current)
    if diffs:
        raise ModelMismatchError(
            f"{what} was made with {_describe(recorded)}, but the model here is "
            f"{_describe(current)} ({'; '.join(diffs)}): embeddings of different models cannot "
            f"be compared. Use the recorded checkpoint, or build a new one with this model")
    if not allow_random and (recorded.get("random_weights") or current.get("random_weights")):
        raise ModelMismatchError(
            f"{what} was made with a model with random weights: its embeddings identify nobody "
            f"and no checksum can tell two such models apart. Load trained weights, or allow "
            f"random weights explicitly (allow_random=True, --allow-random-weights)")


def resolve_weights(record: dict[str, Any], base: str | os.PathLike) -> Path | None:
    """The checkpoint a record names: its path relative to ``base`` (the folder of the file that
    holds the record), else the path as written. ``None`` for random weights.

    Raises:
        FileNotFoundError: the record names a checkpoint that is not there.
    """
    weights = record.get("weights")
    if not weights:
        return None
    candidates = [Path(base) / weights, Path(weights)]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"the checkpoint {weights} recorded (relative to {base}) was not found; pass the "
        f"checkpoint with sha256 {str(record.get('weights_sha256'))[:12]}... explicitly "
        f"(--weights)")


def extractor_for_record(record: dict[str, Any], base: str | os.PathLike,
                         weights: str | os.PathLike | None = None, what: str = "the file",
                         allow_random: bool = False, **options: Any):
    """A :class:`~omnireid.inference.FeatureExtractor` that makes the embeddings ``record``
    describes (checked), with the recorded checkpoint unless ``weights`` names another copy.

    ``options`` go to the extractor (``backend``, ``device``, ``batch_size`` ...).
    """
    path = Path(weights) if weights is not None else resolve_weights(record, base)
    extractor = FeatureExtractor(record["model"], weights=path, size=tuple(record["input"]),
                                 mean=record["mean"], std=record["std"], **options)
    check_same_model(record, model_record(extractor), what, allow_random=allow_random)
    return extractor


__all__ = ["ModelMismatchError", "check_same_model", "extractor_for_record", "model_differences",
           "model_record", "resolve_weights", "weights_digest"]
