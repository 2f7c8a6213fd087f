"""Calibrated same-person decisions: "are these two crops the same person?"

:func:`calibrate` embeds a labelled set, measures the distances of every same-person and
different-person pair (:mod:`omnireid.evaluation.verification`), and returns the threshold for a
chosen false-match rate. :class:`Calibration` saves it as JSON beside the checkpoint
(``<weights>.calibration.json``) together with the model record of
:mod:`omnireid.inference.provenance`; :class:`Verifier` then answers ``same_person(a, b)`` with
the distance and the decision, and refuses a threshold calibrated for another model::

    run = calibrate(extractor, paths, labels, target_fpr=1e-3)
    run.calibration.save(default_calibration_path(extractor.weights))
    verifier = Verifier(extractor)                  # finds the file beside the weights
    verifier.same_person("a.jpg", "b.jpg")          # Verdict(distance=0.31, same=True, ...)
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omnireid.data import load_dataset
from omnireid.errors import DataError
from omnireid.evaluation.verification import (
    DEFAULT_FPRS,
    VerificationResult,
    pair_distances,
    verification_report,
)
from omnireid.files import write_json
from omnireid.inference.inputs import ImageInput
from omnireid.inference.provenance import check_same_model, model_record

logger = logging.getLogger(__name__)

CALIBRATION_SUFFIX = ".calibration.json"
FORMAT = "omnireid-calibration"
FORMAT_VERSION = 1


class CalibrationError(DataError):
    """A calibration file that cannot be used (the message names it)."""


def default_calibration_path(weights: str | os.PathLike) -> Path:
    """``<weights>.calibration.json``: where a threshold for this checkpoint is kept."""
    weights = Path(weights)
    return weights.with_name(weights.name + CALIBRATION_SUFFIX)


@dataclass
class Calibration:
    """A decision threshold on cosine distance and how it was obtained.

    Attributes:
        threshold: pairs at distance ``<= threshold`` are the same person.
        target_fpr: the false-match rate it was chosen for.
        model: the model record (:func:`omnireid.inference.provenance.model_record`).
        summary: counts, EER, every operating point and a thinned ROC
            (:meth:`VerificationResult.to_dict`).
        data: what the calibration set was (source, images, identities, pair rule).
        created: ISO time stamp.
    """

    threshold: float
    target_fpr: float
    model: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    @property
    def enough(self) -> bool:
        """Whether the set was large enough to measure ``target_fpr``."""
        for p in self.summary.get("operating_points", []):
            if math.isclose(p["target_fpr"], self.target_fpr, rel_tol=1e-9):
                return bool(p["enough"])
        return False

    def threshold_for(self, fpr: float) -> float:
        """The threshold recorded for another of the calibrated rates."""
        for p in self.summary.get("operating_points", []):
            if math.isclose(p["target_fpr"], fpr, rel_tol=1e-9):
                return float(p["threshold"])
        rates = [p["target_fpr"] for p in self.summary.get("operating_points", [])]
        raise KeyError(f"no threshold calibrated for FPR {fpr:g}; calibrated rates: {rates}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION, "threshold": self.threshold,
                "target_fpr": self.target_fpr, "distance": "cosine (1 - cos)",
                "model": self.model, "data": self.data, "summary": self.summary,
                "created": self.created}

    def save(self, path: str | os.PathLike) -> Path:
        """Write JSON atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Calibration:
        """Read a file written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            CalibrationError: not a calibration file, or a non-finite threshold.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"calibration file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"{path}: not a calibration file (not valid JSON: {exc})") \
                from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError(f"{path}: not an omnireid calibration file")
        try:
            threshold, target = float(data["threshold"]), float(data["target_fpr"])
            model = dict(data["model"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"{path}: calibration file lacks {exc}") from None
        if not math.isfinite(threshold):
            raise CalibrationError(f"{path}: the threshold is not a finite number ({threshold})")
        return cls(threshold, target, model, data.get("summary", {}), data.get("data", {}),
                   data.get("created", ""))


@dataclass
class LabelledSet:
    """Images with identity labels (and cameras when known), and where they came from."""

    paths: list[str]
    labels: np.ndarray
    cameras: np.ndarray
    description: dict[str, Any]


def load_labelled_set(source: str | os.PathLike, dataset: str | None = None,
                      split: str = "auto", **options: Any) -> LabelledSet:
    """Read a labelled set for calibration.

    Args:
        source: a folder with one sub-folder per identity, a CSV manifest ``path,pid,camid``
            (see :mod:`omnireid.data.datasets.custom`), or the data root of ``dataset``.
        dataset: a registered dataset name (``omnireid data list``) read from ``source``;
            ``None`` picks ``identity_folders`` for a folder and ``csv_manifest`` for a file.
        split: ``"auto"`` (query + gallery when the reader has them, else train), ``"test"``,
            ``"train"`` or ``"all"`` (train and test identities kept apart). Ids the reader
            marks as junk (``extra["junk_pids"]``: -1, and 0 for Market-1501's distractors) are
            left out.
        options: passed to the reader (e.g. ``split_id``).
    """
    src = Path(source)
    if dataset is None:
        if src.is_dir():
            dataset = "identity_folders"
        elif src.is_file():
            dataset = "csv_manifest"
        else:
            raise FileNotFoundError(f"calibration set not found: {source} (a folder per identity, "
                                    f"a CSV manifest, or a data root with --dataset)")
    ds = load_dataset(dataset, src, **options)
    junk = set(ds.extra.get("junk_pids", [])) | {-1}
    test = [s for s in ds.query + ds.gallery if s.pid not in junk]
    if split == "auto":
        split = "test" if test else "train"
    if split not in ("test", "train", "all"):
        raise ValueError(f"split must be auto, test, train or all, got {split!r}")
    parts: list[tuple[str, list]] = []
    if split in ("train", "all"):
        parts.append(("train", ds.train))
    if split in ("test", "all"):
        parts.append(("test", test))
    seen: set[str] = set()
    paths, labels, cams = [], [], []
    for name, samples in parts:
        for s in samples:
            if s.path in seen:  # query and gallery may share files in some layouts
                continue
            seen.add(s.path)
            paths.append(s.path)
            labels.append(f"{name}:{s.pid}" if split == "all" else s.pid)
            cams.append(s.camid)
    if not paths:
        raise ValueError(f"{source}: the {split} split of {dataset} holds no labelled images")
    description = {"source": str(source), "dataset": dataset, "split": split,
                   "images": len(paths), "identities": len(set(labels))}
    return LabelledSet(paths, np.asarray(labels), np.asarray(cams, dtype=np.int64), description)


@dataclass
class CalibrationRun:
    """What :func:`calibrate` measured.

    Attributes:
        result: ROC, EER, operating points and the pair distances.
        calibration: the threshold for ``target_fpr``, ready to save.
        embeddings: ``(M, D)`` float32 embeddings of the images that could be read.
        labels: ``(M,)`` their labels.
        failed: ``(position, message)`` of unreadable images (left out).
    """

    result: VerificationResult
    calibration: Calibration
    embeddings: np.ndarray
    labels: np.ndarray
    failed: list[tuple[int, str]] = field(default_factory=list)


def calibrate(
    extractor: Any,
    images: Sequence[ImageInput],
    labels: Sequence | np.ndarray,
    cameras: Sequence[int] | np.ndarray | None = None,
    *,
    target_fpr: float = 1e-3,
    fprs: Sequence[float] = DEFAULT_FPRS,
    cross_camera: bool = False,
    max_negatives: int | None = 10_000_000,
    seed: int = 0,
    progress: bool = False,
    description: dict[str, Any] | None = None,
) -> CalibrationRun:
    """Embed a labelled set and choose the threshold for ``target_fpr``.

    Args:
        extractor: a :class:`~omnireid.inference.FeatureExtractor`.
        images: ``M`` images (paths, arrays ...).
        labels: ``M`` identity labels.
        cameras: ``M`` camera ids (for ``cross_camera``).
        target_fpr: the false-match rate the saved threshold is chosen for.
        fprs: the rates reported (``target_fpr`` is added).
        cross_camera: count only pairs from different cameras.
        max_negatives: sample different-person pairs above this many (memory bound).
        seed: for that sample.
        progress: show a progress bar while embedding.
        description: recorded as ``Calibration.data`` (source, split ...).
    """
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    ex = extractor.extract(list(images), progress=progress, strict=False)
    for i, msg in ex.failed:
        logger.warning("calibration: left out image #%d: %s", i, msg)
    emb = ex.embeddings
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():
        first = int(ex.indices[np.flatnonzero(bad)[0]])
        raise ValueError(f"the model gave non-finite embeddings for {int(bad.sum())} image(s), "
                         f"e.g. {images[first]!s}")
    kept_labels = labels[ex.indices]
    cams = None if cameras is None else np.asarray(cameras)[ex.indices]
    rates = sorted(set(fprs) | {target_fpr}, reverse=True)
    pairs = pair_distances(emb, kept_labels, cams, cross_camera=cross_camera,
                           max_negatives=max_negatives, seed=seed)
    result = verification_report(pairs, fprs=rates)
    point = result.point(target_fpr)
    data = dict(description or {})
    data.update({"images_used": int(len(emb)), "images_failed": len(ex.failed),
                 "identities": pairs.num_identities, "pairs": "cross-camera" if cross_camera
                 else "all", "seed": seed})
    calibration = Calibration(
        point.threshold, target_fpr, model_record(extractor), result.to_dict(), data,
        datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return CalibrationRun(result, calibration, emb, kept_labels, ex.failed)


@dataclass
class Verdict:
    """One decision: the cosine ``distance``, whether it is the ``same`` person at
    ``threshold``."""

    distance: float
    same: bool
    threshold: float


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine distance ``1 - cos`` of two ``(N, D)`` arrays -> ``(N,)`` float64."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - np.einsum("ij,ij->i", a, b)


class Verifier:
    """Same-person decisions with a calibrated threshold.

    Args:
        extractor: the :class:`~omnireid.inference.FeatureExtractor` to embed with.
        threshold: a cosine-distance threshold to use as is.
        calibration: a :class:`Calibration` or the path of one; it must have been made with this
            extractor's model (checked).
        allow_random: accept a model with random weights (tests and demos only).

    With neither ``threshold`` nor ``calibration``, the file ``<weights>.calibration.json``
    beside the extractor's checkpoint is used.
    """

    def __init__(self, extractor: Any, threshold: float | None = None,
                 calibration: Calibration | str | os.PathLike | None = None,
                 allow_random: bool = False) -> None:
        self.extractor = extractor
        self.calibration: Calibration | None = None
        if threshold is None:
            source = calibration
            if source is None:
                if extractor.weights is None:
                    raise CalibrationError("no threshold: pass threshold= or calibration=, or "
                                           "run `omnireid calibrate` for trained weights")
                source = default_calibration_path(extractor.weights)
                if not source.is_file():
                    raise CalibrationError(f"no threshold: {source} does not exist; run "
                                           f"`omnireid calibrate` for {extractor.weights}")
            cal = source if isinstance(source, Calibration) else Calibration.load(source)
            where = (f"calibration {source}" if not isinstance(source, Calibration)
                     else "the calibration")
            check_same_model(cal.model, model_record(extractor), where, allow_random=allow_random)
            self.calibration = cal
            threshold = cal.threshold
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be finite, got {threshold}")
        self.threshold = float(threshold)

    def decide(self, emb_a: np.ndarray, emb_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distances ``(N,)`` and decisions ``(N,)`` bool for two ``(N, D)`` embedding arrays."""
        a = np.atleast_2d(np.asarray(emb_a, np.float32))
        b = np.atleast_2d(np.asarray(emb_b, np.float32))
        if a.shape != b.shape:
            raise ValueError(f"embedding shapes differ: {a.shape} vs {b.shape}")
        d = cosine_distances(a, b)
        return d, d <= self.threshold

    def verify_pairs(self, images_a: Sequence[ImageInput], images_b: Sequence[ImageInput],
                     bgr: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Distances ``(N,)`` and decisions ``(N,)`` for ``N`` pairs of images (one batch)."""
        if len(images_a) != len(images_b):
            raise ValueError(f"{len(images_a)} images against {len(images_b)}")
        emb = self.extractor([*images_a, *images_b], bgr=bgr)
        return self.decide(emb[: len(images_a)], emb[len(images_a):])

    def same_person(self, a: ImageInput, b: ImageInput, bgr: bool = False) -> Verdict:
        """Are crops ``a`` and ``b`` the same person? (paths, PIL images, arrays ...)"""
        d, same = self.verify_pairs([a], [b], bgr=bgr)
        return Verdict(float(d[0]), bool(same[0]), self.threshold)


__all__ = ["CALIBRATION_SUFFIX", "Calibration", "CalibrationError", "CalibrationRun",
           "LabelledSet", "Verdict", "Verifier", "calibrate", "cosine_distances",
           "default_calibration_path", "load_labelled_set"]
