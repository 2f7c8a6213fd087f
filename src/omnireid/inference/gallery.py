"""A gallery you can keep: embeddings with identity labels and metadata, saved in one file.

Each entry has a stable id, an embedding, an identity label (``""`` when unknown), the source
path of its crop (relative to ``root``) and free metadata (camera, time ...). Entries can be
added and removed (by id or identity), searched, and new crops *assigned*: to the nearest known
identity when it is within the calibrated same-person threshold, else declared new (open set).

Search is exact (a matrix product) while the gallery is small and a FAISS IVF index (extra
``index``) once it holds ``faiss_min_size`` entries; that index is built once and then updated
entry by entry, and is saved with the gallery so that a loaded gallery answers exactly as the
saved one did.

The file is a NumPy ``.npz`` read with ``allow_pickle=False`` (nothing in it can run code),
written atomically (a temporary file renamed over the old one, so an interrupted save leaves the
previous gallery intact) and checked on load: a truncated or altered file is an error that names
it. The gallery records the model that made its embeddings
(:func:`omnireid.inference.provenance.model_record`, with the checkpoint's sha256 and its path
relative to the gallery) and refuses another model, random weights unless allowed, and
non-finite embeddings.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from omnireid.data.decode import IMAGE_EXTENSIONS
from omnireid.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from omnireid.errors import DataError, MissingFileError
from omnireid.files import atomic_write, locked
from omnireid.inference.index import load_faiss, topk
from omnireid.inference.provenance import check_same_model, model_record, weights_digest

logger = logging.getLogger(__name__)

FORMAT = "omnireid-gallery"
FORMAT_VERSION = 2
#: Galleries of at least this many entries are searched with FAISS (when installed).
DEFAULT_FAISS_MIN_SIZE = 100_000
#: The IVF index is retrained when the gallery has grown this many times since it was trained.
RETRAIN_GROWTH = 8


class GalleryError(DataError):
    """A gallery file that cannot be used, or an operation a gallery refuses (names the file)."""


@dataclass
class SearchHits:
    """Nearest gallery entries of each query, nearest first.

    Attributes:
        ids: ``(Q, k)`` int64 entry ids (-1 where the gallery has fewer than k entries).
        rows: ``(Q, k)`` int64 current row positions (-1 likewise).
        distances: ``(Q, k)`` float32 cosine distances ``1 - cos`` (NaN likewise).
        labels: ``Q`` lists of ``k`` identity labels (``""``: unlabelled; ``None`` past the end).
    """

    ids: np.ndarray
    rows: np.ndarray
    distances: np.ndarray
    labels: list[list[str | None]]


@dataclass
class Assignment:
    """Open-set decision for one query.

    Attributes:
        label: the identity it was assigned to; ``None`` when it is new and was not added (with
            ``add_new`` it is the label the new entry got).
        new: no known identity is within the threshold.
        distance: distance to the nearest labelled entry (NaN when there is none).
        entry_id: that entry's id (-1 when none); with ``add_new`` and ``new``, the new entry.
        nearest_label: the nearest identity, whether or not it was accepted.
        runner_up_label, runner_up_distance: the nearest *other* identity among the hits.
        threshold: the threshold used.
    """

    label: str | None
    new: bool
    distance: float
    entry_id: int
    nearest_label: str | None
    runner_up_label: str | None
    runner_up_distance: float
    threshold: float


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _check_finite(embeddings: np.ndarray, what: str, names: Sequence[str] = ()) -> None:
    """Refuse rows with NaN/infinity, and all-zero rows (a checkpoint holding NaN gives all-zero
    embeddings on the ``fused`` CPU path, measured with torch 2.14, instead of NaN)."""
    for bad, problem in ((~np.isfinite(embeddings).all(axis=1), "hold NaN or infinity"),
                         (~np.any(embeddings != 0, axis=1), "are all zeros")):
        if bad.any():
            rows = np.flatnonzero(bad)
            first = int(rows[0])
            example = names[first] if first < len(names) and names[first] else f"row {first}"
            raise GalleryError(f"{what}: {len(rows)} embedding(s) {problem} (e.g. {example}); "
                               f"the model or the checkpoint is broken")


class Gallery:
    """Embeddings of known crops with identity labels and metadata.

    Args:
        embeddings: ``(N, D)`` float32.
        paths: ``N`` source paths relative to ``root`` (``""`` when an entry has none).
        root: the folder the paths are relative to (saved relative to the gallery file).
        meta: gallery-level metadata; ``meta["model"]`` is the model record.
        labels: ``N`` identity labels (``""`` = unlabelled); default all unlabelled.
        ids: ``N`` unique int64 entry ids; default ``0..N-1``.
        entry_meta: ``N`` dicts of free metadata (camera, time ...).
        faiss_min_size: entries from which search uses FAISS (``None``: never).
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        paths: Sequence[str] | None = None,
        root: str | os.PathLike = ".",
        meta: dict[str, Any] | None = None,
        labels: Sequence[str] | None = None,
        ids: Sequence[int] | np.ndarray | None = None,
        entry_meta: Sequence[dict[str, Any]] | None = None,
        next_id: int | None = None,
        faiss_min_size: int | None = DEFAULT_FAISS_MIN_SIZE,
    ) -> None:
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2:
            raise GalleryError(f"gallery embeddings must be (N, D), got shape {emb.shape}")
        n = len(emb)
        self.paths = [str(p) for p in paths] if paths is not None else [""] * n
        self.labels = [str(v) for v in labels] if labels is not None else [""] * n
        self.ids = (np.asarray(ids, dtype=np.int64) if ids is not None
                    else np.arange(n, dtype=np.int64))
        self.entry_meta = [dict(m) for m in entry_meta] if entry_meta is not None \
            else [{} for _ in range(n)]
        for name, seq in (("paths", self.paths), ("labels", self.labels), ("ids", self.ids),
                          ("entry metadata", self.entry_meta)):
            if len(seq) != n:
                raise GalleryError(f"gallery: {n} embeddings but {len(seq)} {name}")
        if len(np.unique(self.ids)) != n:
            raise GalleryError("gallery: entry ids are not unique")
        _check_finite(emb, "gallery", self.paths)
        self.embeddings = emb
        self.root = str(root)
        self.meta = dict(meta or {})
        self.next_id = int(next_id if next_id is not None
                           else (int(self.ids.max()) + 1 if n else 0))
        self.faiss_min_size = faiss_min_size
        self._unit_cache: np.ndarray | None = None
        self._faiss = None  # a faiss IndexIVFFlat keyed by entry id, once large
        self._faiss_trained_size = 0

    # ------------------------------------------------------------------ basics
    @classmethod
    def for_extractor(cls, extractor: Any, root: str | os.PathLike = ".",
                      allow_random: bool = False, **options: Any) -> Gallery:
        """An empty gallery for the embeddings of ``extractor`` (its model is recorded)."""
        record = model_record(extractor)
        if record["random_weights"] and not allow_random:
            raise GalleryError("the model has random weights: a gallery of its embeddings "
                               "identifies nobody. Load trained weights, or allow random "
                               "weights explicitly (allow_random=True, --allow-random-weights)")
        dim = int(extractor.feature_dim) or 512
        return cls(np.zeros((0, dim), np.float32), root=root, meta={"model": record}, **options)

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def model(self) -> dict[str, Any]:
        """The record of the model that made the embeddings (empty when unknown)."""
        record = self.meta.get("model")
        return record if isinstance(record, dict) else {}

    def full_path(self, i: int) -> Path:
        """Absolute path of the crop of row ``i``."""
        return Path(self.root) / self.paths[i]

    def identities(self) -> dict[str, int]:
        """Entries per identity label (unlabelled entries left out), sorted by label."""
        names, counts = np.unique([v for v in self.labels if v], return_counts=True)
        return {str(k): int(c) for k, c in zip(names, counts)}

    def rows_of(self, ids: Sequence[int]) -> np.ndarray:
        """Row positions of entry ids; unknown ids raise :class:`KeyError`."""
        where = {int(e): r for r, e in enumerate(self.ids)}
        missing = [int(e) for e in ids if int(e) not in where]
        if missing:
            raise KeyError(f"no gallery entry with id {', '.join(map(str, missing[:10]))}")
        return np.asarray([where[int(e)] for e in ids], dtype=np.int64)

    def check_model(self, current: dict[str, Any] | Any, what: str = "the gallery",
                    allow_random: bool = False) -> None:
        """Refuse a model (record or extractor) other than the one that made the embeddings."""
        record = current if isinstance(current, dict) else model_record(current)
        if not self.model:
            raise GalleryError(f"{what} records no model; rebuild it with `omnireid gallery add` "
                               "or `omnireid extract`")
        check_same_model(self.model, record, what, allow_random=allow_random)

    # ------------------------------------------------------------------ changes
    def add(
        self,
        embeddings: np.ndarray,
        labels: Sequence[str] | str | None = None,
        paths: Sequence[str] | None = None,
        metadata: Sequence[dict[str, Any]] | dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Append entries.

        Args:
            embeddings: ``(n, D)`` (or ``(D,)``) float embeddings.
            labels: one label for all, or ``n`` labels (``""``: unlabelled).
            paths: ``n`` source paths (relative to ``root`` or absolute).
            metadata: one dict for all, or ``n`` dicts.

        Returns:
            ``(n,)`` int64 ids of the new entries.
        """
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim == 1:
            emb = emb[None]
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise GalleryError(f"cannot add embeddings of shape {emb.shape} to a gallery of "
                               f"{self.dim}-d embeddings")
        n = len(emb)
        labs = [labels] * n if labels is None or isinstance(labels, str) else list(labels)
        labs = ["" if v is None else str(v) for v in labs]
        ps = [""] * n if paths is None else [str(p) for p in paths]
        metas = ([dict(metadata or {}) for _ in range(n)] if metadata is None
                 or isinstance(metadata, dict) else [dict(m) for m in metadata])
        if not len(labs) == len(ps) == len(metas) == n:
            raise GalleryError(f"{n} embeddings but {len(labs)} labels, {len(ps)} paths and "
                               f"{len(metas)} metadata entries")
        _check_finite(emb, "cannot add to the gallery", ps)
        new_ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        self.embeddings = np.concatenate([self.embeddings, emb]) if len(self) else emb.copy()
        self.ids = np.concatenate([self.ids, new_ids])
        self.labels += labs
        self.paths += ps
        self.entry_meta += metas
        if self._unit_cache is not None:
            self._unit_cache = np.concatenate([self._unit_cache, _unit(emb)])
        if self._faiss is not None and n:
            self._faiss.add_with_ids(_unit(emb), new_ids)
        return new_ids

    def remove(self, ids: Sequence[int] | None = None,
               labels: Sequence[str] | None = None) -> int:
        """Remove entries by id and/or every entry of the given identities.

        Returns:
            the number of entries removed.

        Raises:
            KeyError: an id or identity that is not in the gallery (nothing is removed).
        """
        drop = np.zeros(len(self), dtype=bool)
        if ids is not None and len(ids):
            drop[self.rows_of(ids)] = True
        if labels:
            have = set(self.labels)
            missing = [v for v in labels if v not in have or not v]
            if missing:
                raise KeyError(f"no gallery entry has identity {', '.join(map(repr, missing))}")
            wanted = set(labels)
            drop |= np.fromiter((v in wanted for v in self.labels), bool, len(self))
        if not drop.any():
            return 0
        keep = ~drop
        removed_ids = self.ids[drop]
        self.embeddings = self.embeddings[keep]
        self.ids = self.ids[keep]
        self.labels = [v for v, k in zip(self.labels, keep) if k]
        self.paths = [v for v, k in zip(self.paths, keep) if k]
        self.entry_meta = [v for v, k in zip(self.entry_meta, keep) if k]
        if self._unit_cache is not None:
            self._unit_cache = self._unit_cache[keep]
        if self._faiss is not None:
            self._faiss.remove_ids(removed_ids.astype(np.int64))
            if self.index_kind == "exact":  # small again
                self._faiss, self._faiss_trained_size = None, 0
        return int(drop.sum())

    # ------------------------------------------------------------------ search
    @property
    def _unit(self) -> np.ndarray:
        if self._unit_cache is None:
            self._unit_cache = _unit(self.embeddings)
        return self._unit_cache

    @property
    def index_kind(self) -> str:
        """``"exact"`` or ``"faiss-ivf"``: what the next search uses."""
        if self.faiss_min_size is None or len(self) < self.faiss_min_size:
            return "exact"
        try:
            load_faiss()
        except ImportError:
            return "exact"
        return "faiss-ivf"

    def _faiss_index(self):
        if (self._faiss is not None and len(self) <= RETRAIN_GROWTH * self._faiss_trained_size
                and self._faiss.ntotal == len(self)):
            return self._faiss
        faiss = load_faiss()
        x = self._unit
        nlist = max(1, min(int(4 * np.sqrt(len(x))), len(x) // 39 or 1))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 0
        sample = x
        if len(x) > 100 * nlist:
            rng = np.random.default_rng(0)
            sample = x[np.sort(rng.choice(len(x), 100 * nlist, replace=False))]
        logger.info("gallery: training a FAISS IVF index (%d cells) on %d of %d entries", nlist,
                    len(sample), len(x))
        index.train(sample)
        index.nprobe = min(nlist, int(self.meta.get("nprobe", 16)))
        index.add_with_ids(x, self.ids)
        self._faiss, self._faiss_trained_size = index, len(x)
        return index

    def search(self, queries: np.ndarray, k: int = 10) -> SearchHits:
        """The ``k`` nearest entries of each of the ``(Q, D)`` query embeddings."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise GalleryError(f"queries must be (Q, {self.dim}), got shape {q.shape}")
        _check_finite(q, "queries")
        q = _unit(q)
        kk = min(k, len(self))
        ids = np.full((len(q), k), -1, np.int64)
        rows = np.full((len(q), k), -1, np.int64)
        sims = np.full((len(q), k), np.nan, np.float32)
        if kk > 0:
            if self.index_kind == "exact":
                r, s = topk(q @ self._unit.T, kk, largest=True)
                rows[:, :kk], sims[:, :kk], ids[:, :kk] = r, s, self.ids[r]
            else:
                s, e = self._faiss_index().search(q, kk)
                found = e >= 0
                ids[:, :kk] = e
                rows[:, :kk][found] = self.rows_of(e[found])
                sims[:, :kk] = np.where(found, s, np.nan)
        labels = [[self.labels[r] if r >= 0 else None for r in row] for row in rows]
        return SearchHits(ids, rows, (1.0 - sims).astype(np.float32), labels)

    def threshold(self) -> float:
        """The same-person threshold recorded with the gallery (``meta["same_person"]``)."""
        cal = self.meta.get("same_person")
        if not isinstance(cal, dict) or "threshold" not in cal:
            raise GalleryError("the gallery has no same-person threshold: pass one, or attach a "
                               "calibration (`omnireid calibrate`, then `omnireid gallery add "
                               "--calibration FILE` or `gallery assign --calibration FILE`)")
        return float(cal["threshold"])

    def assign(
        self,
        queries: np.ndarray,
        threshold: float | None = None,
        k: int = 32,
        add_new: bool = False,
        new_label: str = "person-{id}",
        paths: Sequence[str] | None = None,
        metadata: Sequence[dict[str, Any]] | dict[str, Any] | None = None,
    ) -> list[Assignment]:
        """Open-set assignment: each query goes to the identity of its nearest labelled entry
        when that is within ``threshold`` (cosine distance), else it is new.

        Args:
            queries: ``(Q, D)`` embeddings.
            threshold: same-person threshold; default the gallery's calibration.
            k: entries looked at per query (unlabelled entries are skipped).
            add_new: add each new query as an entry of a new identity (``new_label`` formatted
                with the new entry's ``id``), so that later queries of the same person in the
                same call find it; the queries are then handled one by one, in order.
            paths, metadata: recorded with the entries ``add_new`` adds.
        """
        thr = self.threshold() if threshold is None else float(threshold)
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        metas = ([dict(metadata or {}) for _ in range(len(q))]
                 if metadata is None or isinstance(metadata, dict) else list(metadata))
        if not add_new:
            return [self._decide(hits, thr) for hits in self._hits_per_query(q, k)]
        out = []
        for i in range(len(q)):
            a = self._decide(self._hits_per_query(q[i:i + 1], k)[0], thr)
            if a.new:
                new_id = int(self.next_id)
                a.label = new_label.format(id=new_id)
                self.add(q[i:i + 1], [a.label], [paths[i]] if paths is not None else None,
                         [metas[i]])
                a.entry_id = new_id
            out.append(a)
        return out

    def _hits_per_query(self, q: np.ndarray, k: int) -> list[list[tuple[float, int, str]]]:
        labelled = sum(1 for v in self.labels if v)
        if labelled == 0:
            return [[] for _ in range(len(q))]
        kk = min(len(self), max(k, 1))
        hits = self.search(q, kk)
        out = []
        for i in range(len(q)):
            found = [(float(d), int(e), lab) for d, e, lab in
                     zip(hits.distances[i], hits.ids[i], hits.labels[i]) if lab]
            if not found and labelled:  # all k nearest unlabelled: look at labelled rows only
                rows = np.flatnonzero(np.asarray(self.labels, dtype=object) != "")
                d = 1.0 - self._unit[rows] @ _unit(q[i:i + 1])[0]
                order = np.argsort(d, kind="stable")[:k]
                found = [(float(d[j]), int(self.ids[rows[j]]), self.labels[rows[j]])
                         for j in order]
            out.append(found)
        return out

    @staticmethod
    def _decide(found: list[tuple[float, int, str]], thr: float) -> Assignment:
        if not found:
            return Assignment(None, True, float("nan"), -1, None, None, float("nan"), thr)
        d, entry, lab = found[0]
        other = next(((d2, lab2) for d2, _, lab2 in found if lab2 != lab), (float("nan"), None))
        new = not d <= thr
        return Assignment(None if new else lab, new, d, entry, lab, other[1], other[0], thr)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write the gallery atomically (temporary file, fsync, rename).

        An interruption at any point leaves the previous file as it was.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.loads(json.dumps(self.meta))
        record = meta.get("model")
        if isinstance(record, dict) and record.get("weights"):
            record["weights"] = _relative_to(Path(record["weights"]), path.parent.resolve())
        index_blob = np.zeros(0, np.uint8)
        index_info = None
        if self._faiss is not None and self._faiss.ntotal == len(self):
            index_blob = np.asarray(load_faiss().serialize_index(self._faiss))
            index_info = {"kind": "faiss-ivf", "trained_size": self._faiss_trained_size,
                          "nlist": int(self._faiss.nlist), "nprobe": int(self._faiss.nprobe)}
        labels = np.array(self.labels, dtype=str) if self.labels else np.zeros(0, "<U1")
        paths = np.array(self.paths, dtype=str) if self.paths else np.zeros(0, "<U1")
        entry_meta = json.dumps(self.entry_meta)
        header = {
            "format": FORMAT, "version": FORMAT_VERSION, "count": len(self), "dim": self.dim,
            "root": _relative_to(Path(self.root).resolve(), path.parent.resolve()),
            "next_id": self.next_id, "meta": meta,
            "index": index_info,
            "checksum": _digest(self.embeddings, self.ids, labels, paths,
                                np.frombuffer(entry_meta.encode(), np.uint8), index_blob),
        }
        with atomic_write(path, "wb") as fh:
            np.savez(fh, header=np.array(json.dumps(header)), embeddings=self.embeddings,
                     ids=self.ids, labels=labels, paths=paths,
                     entry_meta=np.array(entry_meta), faiss_index=index_blob)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, allow_random: bool = False,
             faiss_min_size: int | None = DEFAULT_FAISS_MIN_SIZE) -> Gallery:
        """Read a gallery written by :meth:`save` (or by ``omnireid extract`` of an older
        version).

        Raises:
            MissingFileError: no such file.
            GalleryError: the file is truncated, altered or not a gallery, holds non-finite
                embeddings, or was made with random weights (unless ``allow_random``); the
                message names the file.
        """
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"gallery file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise GalleryError(f"{path} is not a readable omnireid gallery (truncated or "
                               f"corrupt file?): {exc}") from None
        if "header" not in arrays:
            return cls._load_v1(path, arrays, allow_random)
        try:
            header = json.loads(str(arrays["header"]))
            if header.get("format") != FORMAT:
                raise GalleryError(f"{path} is not an omnireid gallery file")
            if int(header.get("version", 0)) > FORMAT_VERSION:
                raise GalleryError(f"{path} was written by a newer omnireid (gallery format "
                                   f"{header['version']}); upgrade omnireid to read it")
            emb, ids = arrays["embeddings"], arrays["ids"]
            labels, paths, blob = arrays["labels"], arrays["paths"], arrays["faiss_index"]
            entry_text = str(arrays["entry_meta"])
            checksum = _digest(emb, ids, labels, paths,
                               np.frombuffer(entry_text.encode(), np.uint8), blob)
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            if isinstance(exc, GalleryError):
                raise
            raise GalleryError(f"{path} is not a complete omnireid gallery: missing or "
                               f"unreadable {exc}") from None
        if checksum != header.get("checksum") or len(emb) != header.get("count"):
            raise GalleryError(f"{path}: the content does not match its checksum; the file was "
                               f"altered or damaged")
        meta = header.get("meta", {})
        record = meta.get("model")
        if isinstance(record, dict) and record.get("weights"):
            weights = Path(record["weights"])
            if not weights.is_absolute():
                record["weights"] = str((path.parent / weights).resolve())
        if isinstance(record, dict) and record.get("random_weights") and not allow_random:
            raise GalleryError(f"{path} was made with a model with random weights: its "
                               f"embeddings identify nobody. Allow it explicitly "
                               f"(allow_random=True, --allow-random-weights)")
        root = Path(header.get("root", "."))
        root = root if root.is_absolute() else (path.parent / root).resolve()
        try:
            gallery = cls(emb, [str(p) for p in paths], str(root), meta,
                          [str(v) for v in labels], ids, json.loads(entry_text),
                          header.get("next_id"), faiss_min_size=faiss_min_size)
        except GalleryError as exc:
            raise GalleryError(f"{path}: {exc}") from None
        info = header.get("index")
        if blob.size and info and gallery.index_kind == "faiss-ivf":
            index = load_faiss().deserialize_index(blob)
            index.nprobe = int(info.get("nprobe", 16))
            if index.ntotal == len(gallery):
                gallery._faiss = index
                gallery._faiss_trained_size = int(info.get("trained_size", len(gallery)))
        return gallery

    @classmethod
    def _load_v1(cls, path: Path, arrays: dict[str, np.ndarray], allow_random: bool) -> Gallery:
        """A gallery written by ``omnireid extract`` before labels existed."""
        try:
            emb = arrays["embeddings"]
            paths = [str(p) for p in arrays["paths"]]
            root = str(arrays["root"])
            old = json.loads(str(arrays["meta"]))
        except (KeyError, ValueError) as exc:
            raise GalleryError(f"{path} is not an omnireid gallery file: missing {exc}") from None
        weights = old.get("weights")
        record = {"model": old.get("model"), "weights": weights,
                  "weights_name": Path(weights).name if weights else None,
                  "weights_sha256": None, "random_weights": not weights,
                  "input": old.get("input", [256, 128]),
                  "mean": old.get("mean", list(IMAGENET_MEAN)),
                  "std": old.get("std", list(IMAGENET_STD)),
                  "normalized": old.get("normalized", True), "backend": old.get("backend"),
                  "legacy": True}
        if weights and Path(weights).is_file():
            record["weights_sha256"] = weights_digest(weights)
            record["weights"] = str(Path(weights).resolve())
        if record["random_weights"] and not allow_random:
            raise GalleryError(f"{path} was made with a model with random weights (allow it "
                               f"explicitly: allow_random=True, --allow-random-weights)")
        meta = {k: v for k, v in old.items() if k not in ("model", "weights", "input", "mean",
                                                         "std", "normalized", "backend")}
        meta["model"] = record
        try:
            return cls(emb, paths, root, meta)
        except GalleryError as exc:
            raise GalleryError(f"{path}: {exc}") from None

    def info(self) -> dict[str, Any]:
        """A summary: size, identities, model, index, threshold."""
        ids = self.identities()
        return {"entries": len(self), "dim": self.dim, "identities": len(ids),
                "unlabelled": sum(1 for v in self.labels if not v),
                "largest_identities": dict(sorted(ids.items(), key=lambda kv: -kv[1])[:10]),
                "model": self.model, "index": self.index_kind,
                "same_person": self.meta.get("same_person"), "root": self.root,
                "next_id": self.next_id}


def _relative_to(target: Path, folder: Path) -> str:
    """``target`` relative to ``folder`` (so that a gallery, its crops and its checkpoint can
    move together); absolute when there is no relative path (another drive)."""
    if not target.is_absolute():
        return str(target)
    try:
        return os.path.relpath(target, folder)
    except ValueError:
        return str(target)


def find_images(source: str | os.PathLike) -> tuple[Path, list[str]]:
    """Images under a folder (recursively) or matching a glob pattern, sorted.

    Returns:
        ``(root, relative_paths)``: the folder (or the glob's fixed leading folder) and the
        sorted image paths relative to it.
    """
    text = str(source)
    if os.path.isdir(text):
        root = Path(text)
        files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
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


__all__ = ["Assignment", "DEFAULT_FAISS_MIN_SIZE", "Gallery", "GalleryError", "SearchHits",
           "find_images", "locked"]
