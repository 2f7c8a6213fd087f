"""Loading and saving weights: torchreid checkpoints of both OSNet layouts, safetensors, hashes.

Checkpoints are read with ``torch.load(..., weights_only=True)`` (or safetensors), so a file can
hold tensors and plain containers but never arbitrary Python objects.

Parameter layouts:

* ``omnireid`` (ours): ``convS.I.streams.T.K.*`` for the T-th stream's K-th Lite 3x3,
  ``poolS.0.*`` between stages, ``in_inside`` / ``in_after`` for instance norm.
* ``torchreid_osnet`` (torchreid's ``osnet.py``): streams ``conv2a``, ``conv2b.K``, ``conv2c.K``,
  ``conv2d.K``; the stage transition is the last item of the stage (``conv2.2.0.*``); IN after the
  addition is ``IN``.
* ``torchreid_osnet_ain`` (``osnet_ain.py``): streams ``conv2.T.layers.K``; ``pool2``/``pool3``;
  IN inside the residual is ``IN``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from omnireid.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from omnireid.errors import CheckpointError, MissingFileError, UnknownNameError, clean_message
from omnireid.extras import require
from omnireid.files import atomic_path, atomic_torch_save
from omnireid.models.arch import OSNetArch
from omnireid.models.layers import INPosition

logger = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
_STREAM_LETTERS = "abcd"


@dataclass(frozen=True)
class Preprocessing:
    """How a model's input is prepared: the (height, width) crops are resized to and the
    per-channel mean/std they are normalised with.

    :func:`load_weights` attaches the record of a known checkpoint to the model (attribute
    ``preprocessing``); :func:`preprocessing_of` reads it back, with ImageNet's mean/std at 256x128
    (torchreid's defaults) for a model that has none.
    """

    input_size: tuple[int, int] = (256, 128)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def preprocessing_of(model: object) -> Preprocessing:
    """The :class:`Preprocessing` recorded on ``model`` by :func:`load_weights`, else the default."""
    found = getattr(model, "preprocessing", None)
    return found if isinstance(found, Preprocessing) else Preprocessing()


@dataclass(frozen=True)
class KnownWeights:
    """A checkpoint whose content we know, named by ``model`` and ``tag`` (the data it was trained
    on). A file with this sha256 is recognised whatever it is called; a file called ``filename``
    whose sha256 differs is refused."""

    filename: str
    sha256: str
    model: str
    tag: str
    num_classes: int
    preprocessing: Preprocessing = Preprocessing()
    layout: str = "torchreid_osnet"
    metrics: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.model, self.tag)


#: Checkpoints we know, keyed by (model name, tag). Nothing is ever downloaded: place the file
#: (under any name) and pass its path.
KNOWN_WEIGHTS: dict[tuple[str, str], KnownWeights] = {
    w.key: w
    for w in [
        KnownWeights(
            "osnet_x0_25_msmt17.pth",
            "6f57607fed9f502b9efed546108132ee715df5a5b6e6932c6269bacb47f59f99",
            "osnet_x0_25", "msmt17", 1041,
            metrics={"cuhk03_pair1_cam0_vs_cam1_cosine": {"rank1": 0.4146341383457184,
                                                          "mAP": 0.4097448134786294}},
        ),
        KnownWeights(
            "osnet_x0_25_market1501.pth",
            "c0ff09177a21417a19bc73bbf5af4eb5d2b097c2074ed35e67819ee6cd93612c",
            "osnet_x0_25", "market1501", 751,
            metrics={"cuhk03_pair1_cam0_vs_cam1_cosine": {"rank1": 0.2128603160381317,
                                                          "mAP": 0.21978160583069475}},
        ),
    ]
}


def known_weights(model: str, tag: str) -> KnownWeights:
    """The known checkpoint of ``model`` trained on ``tag``.

    Raises:
        UnknownNameError: no such checkpoint (the message lists the known ones).
    """
    try:
        return KNOWN_WEIGHTS[(model, tag)]
    except KeyError:
        known = ", ".join(f"{m}/{t}" for m, t in sorted(KNOWN_WEIGHTS))
        raise UnknownNameError(f"no known checkpoint {model}/{tag}; known: {known}") from None


def _known_by_filename(name: str) -> KnownWeights | None:
    return next((w for w in KNOWN_WEIGHTS.values() if w.filename == name), None)


class WeightsError(CheckpointError):
    """A checkpoint that cannot be read or does not fit the model."""


def identify_weights(path: str | os.PathLike,
                     expect: KnownWeights | None = None) -> KnownWeights | None:
    """The known checkpoint ``path`` holds, recognised by its sha256 whatever the file is called;
    ``None`` for an unknown file. ``expect``: the checkpoint the caller says this is (e.g.
    ``known_weights("osnet_x0_25", "msmt17")``); the file must then be exactly that one.

    Raises:
        WeightsError: the file is not ``expect``, or it carries a known checkpoint's file name
            but other bytes (a corrupt or truncated download, or another file under that name).
    """
    path = Path(path)
    actual = sha256_of(path)
    found = next((w for w in KNOWN_WEIGHTS.values() if w.sha256 == actual), None)
    named = expect or _known_by_filename(path.name)
    if found is not None and (named is None or found == named):
        return found
    if named is not None:
        what = ("the file is corrupt or a different checkpoint" if _looks_like_torch_file(path)
                else f"it is not a checkpoint at all: {describe_file(path)}")
        raise WeightsError(
            f"{path}: sha256 {actual} does not match the known checkpoint {named.filename} "
            f"({named.model}/{named.tag}, {named.sha256}); {what}"
        )
    return None


# torchreid's engine saves ``{'state_dict', 'epoch', 'rank1', 'optimizer', 'scheduler'}`` with
# ``rank1`` a ``numpy.float32`` (torchreid/engine/engine.py, ``save_model``). Unpickling a numpy
# scalar needs numpy's ``scalar`` reconstructor and dtype classes, which ``weights_only=True``
# refuses by default. These are the only globals allowed beyond torch's defaults, and the
# reconstructor is wrapped so that it builds numeric scalars only (no object dtype).
try:
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import scalar as _numpy_scalar

_NUMERIC_DTYPES = ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                   "Float16", "Float32", "Float64")


def _numeric_scalar(dtype: object, data: object = None) -> object:
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf":
        raise pickle.UnpicklingError(f"refused a numpy scalar of dtype {dtype!r}: only numbers are allowed")
    return _numpy_scalar(dtype) if data is None else _numpy_scalar(dtype, data)


def _numpy_scalar_globals() -> list:
    allowed: list = [(_numeric_scalar, "numpy.core.multiarray.scalar"),
                     (_numeric_scalar, "numpy._core.multiarray.scalar"), np.dtype]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    for name in _NUMERIC_DTYPES:
        cls = getattr(dtypes, f"{name}DType", None)
        if cls is not None:
            allowed.append(cls)
    return allowed


def _torch_load_safely(path: Path) -> object:
    """``torch.load(weights_only=True)`` that also accepts numeric numpy scalars."""
    with torch.serialization.safe_globals(_numpy_scalar_globals()):
        return torch.load(path, map_location="cpu", weights_only=True)


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint(path: str | os.PathLike, verify: bool = True) -> StateDict:
    """Read a state dict from ``path`` safely.

    Accepts safetensors files, zip or legacy (non-zip) ``torch.save`` files holding a plain state
    dict or a ``{'state_dict': ...}`` / ``{'model': ...}`` wrapper, with or without a ``module.``
    prefix. With ``verify``, a file named like a checkpoint of :data:`KNOWN_WEIGHTS` must have
    its sha256 (see :func:`identify_weights`).
    """
    return read_checkpoint_info(path, verify)[0]


def read_checkpoint_info(path: str | os.PathLike, verify: bool = True) -> tuple[StateDict, dict]:
    """:func:`read_checkpoint`, plus the plain numbers stored beside the weights (torchreid's
    ``epoch`` and ``rank1``) as a dict (empty for a bare state dict)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path} is a folder, not a checkpoint file" if path.is_dir()
                               else f"checkpoint not found: {path}")
    if verify and _known_by_filename(path.name) is not None:
        identify_weights(path)
    if path.suffix == ".safetensors":
        load_file = require("safetensors.torch", "deploy", "reading .safetensors").load_file
        try:
            obj: object = load_file(str(path))
        except Exception as exc:  # the file's bytes decide what fails: always a bad file here
            raise WeightsError(f"{path}: not a readable safetensors file "
                               f"({type(exc).__name__}: {clean_message(str(exc))})") from None
    else:
        try:
            obj = _torch_load_safely(path)
        except pickle.UnpicklingError as exc:
            if not _looks_like_torch_file(path):  # text, HTML, other bytes: not a refused pickle
                raise WeightsError(f"{path}: not a readable checkpoint: {describe_file(path)} "
                                   f"({type(exc).__name__}: {clean_message(str(exc)).splitlines()[0]})") from None
            raise WeightsError(
                f"{path}: refused to load: the file holds Python objects other than tensors, "
                f"plain containers and numbers, which could run code when unpickled.\n"
                f"{clean_message(str(exc))}") from None
        except MemoryError:
            raise
        except Exception as exc:  # torn, truncated, text or foreign files fail in many ways
            raise WeightsError(f"{path}: not a readable checkpoint: {describe_file(path)} "
                               f"({type(exc).__name__}: {clean_message(str(exc))})") from None
    return unwrap_state_dict(obj, path), checkpoint_meta(obj)


def _looks_like_torch_file(path: str | os.PathLike) -> bool:
    """A zip archive (torch >= 1.6) or a pickle (the legacy format), judged by the first bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return False
    return head == b"PK" or head[:1] == b"\x80"


def describe_file(path: str | os.PathLike) -> str:
    """What a file that torch cannot load looks like, from its first bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    if not head:
        return "the file is empty"
    if zipfile.is_zipfile(path):
        return "a zip archive that is not a complete torch checkpoint (truncated or damaged?)"
    if head[:2] == b"PK":
        return "the start of a zip archive, cut short (truncated download or copy?)"
    if head[:1] == b"\x80":
        return "a pickle (legacy torch format) that is truncated or damaged"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "neither a torch zip archive nor a legacy torch file"
    if text.lstrip().lower().startswith(("<!doctype html", "<html")):
        return "an HTML page (a download that saved an error or login page?)"
    return "a text file, not a checkpoint"


def checkpoint_meta(obj: object) -> dict:
    """The plain numbers (``epoch``, ``rank1`` ...) stored beside a wrapped state dict."""
    meta: dict = {}
    if not isinstance(obj, Mapping):
        return meta
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor) and getattr(value, "shape", None) == ():
            value = value.item()  # a numpy scalar
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            meta[str(key)] = value
    return meta


def unwrap_state_dict(obj: object, source: object = "checkpoint") -> StateDict:
    """Find the tensor mapping inside common checkpoint wrappers and strip ``module.``."""
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{source}: no state dict found")
    out: StateDict = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise WeightsError(f"{source}: entry {k!r} is not a tensor ({type(v).__name__})")
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def detect_layout(state: Mapping[str, torch.Tensor]) -> str:
    """Return ``omnireid``, ``torchreid_osnet``, ``torchreid_osnet_ain`` or ``other``."""
    keys = list(state)
    if any(".streams." in k for k in keys):
        return "omnireid"
    if any(re.search(r"\.conv2[a-d]\.", k) for k in keys):
        return "torchreid_osnet"
    if any(re.search(r"^conv[234]\.\d+\.conv2\.\d+\.layers\.", k) for k in keys):
        return "torchreid_osnet_ain"
    return "other"


# --- torchreid -> omnireid -----------------------------------------------------------------

def _block_key_from_osnet(rest: str) -> str:
    m = re.match(r"conv2([a-d])\.(.*)", rest)
    if m:
        t = _STREAM_LETTERS.index(m.group(1))
        tail = m.group(2)
        if t == 0:  # conv2a is a single Lite 3x3, not a sequence
            return f"streams.0.0.{tail}"
        return f"streams.{t}.{tail}"
    if rest.startswith("IN."):
        return "in_after." + rest[3:]
    return rest


def _block_key_from_ain(rest: str) -> str:
    m = re.match(r"conv2\.(\d+)\.layers\.(.*)", rest)
    if m:
        return f"streams.{m.group(1)}.{m.group(2)}"
    if rest.startswith("IN."):
        return "in_inside." + rest[3:]
    return rest


def from_torchreid(state: Mapping[str, torch.Tensor], arch: OSNetArch) -> StateDict:
    """Convert a torchreid OSNet state dict (either layout) to omnireid's layout."""
    layout = detect_layout(state)
    if layout not in ("torchreid_osnet", "torchreid_osnet_ain"):
        return dict(state)
    block_fn = _block_key_from_osnet if layout == "torchreid_osnet" else _block_key_from_ain
    out: StateDict = {}
    for key, value in state.items():
        m = re.match(r"conv([234])\.(\d+)\.(.*)", key)
        if m:
            stage, index, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            n_blocks = arch.layers[stage - 2]
            if layout == "torchreid_osnet" and index == n_blocks and stage in (2, 3):
                key = f"pool{stage}.{rest}"  # transition stored inside the stage
            else:
                key = f"conv{stage}.{index}.{block_fn(rest)}"
        out[key] = value
    return out


# --- omnireid -> torchreid -----------------------------------------------------------------

def torchreid_layout_for(arch: OSNetArch) -> str:
    """The torchreid layout able to hold ``arch``: osnet.py (IN after) or osnet_ain.py (IN inside)."""
    inside = any(b.inside for b in arch.blocks)
    after = any(b.after for b in arch.blocks)
    if inside and after:
        raise WeightsError(
            "this architecture has IN both inside and after blocks; torchreid has no layout for it"
        )
    return "torchreid_osnet_ain" if inside else "torchreid_osnet"


def to_torchreid(state: Mapping[str, torch.Tensor], arch: OSNetArch, layout: str | None = None) -> StateDict:
    """Convert an omnireid OSNet state dict to torchreid's ``osnet.py`` or ``osnet_ain.py`` layout."""
    layout = layout or torchreid_layout_for(arch)
    if layout == "torchreid_osnet" and any(b.inside for b in arch.blocks):
        raise WeightsError("torchreid's osnet.py layout cannot hold IN inside the residual")
    if layout == "torchreid_osnet_ain" and any(b.after for b in arch.blocks):
        raise WeightsError("torchreid's osnet_ain.py layout cannot hold IN after the addition")
    out: StateDict = {}
    for key, value in state.items():
        m = re.match(r"pool([23])\.(.*)", key)
        if m and layout == "torchreid_osnet":
            stage = int(m.group(1))
            key = f"conv{stage}.{arch.layers[stage - 2]}.{m.group(2)}"
        m = re.match(r"(conv[234]\.\d+\.)(.*)", key)
        if m:
            prefix, rest = m.groups()
            s = re.match(r"streams\.(\d+)\.(\d+)\.(.*)", rest)
            if s:
                t, k, tail = int(s.group(1)), s.group(2), s.group(3)
                if layout == "torchreid_osnet":
                    letter = _STREAM_LETTERS[t]
                    rest = f"conv2a.{tail}" if t == 0 else f"conv2{letter}.{k}.{tail}"
                else:
                    rest = f"conv2.{t}.layers.{k}.{tail}"
            elif rest.startswith(("in_inside.", "in_after.")):
                rest = "IN." + rest.split(".", 1)[1]
            key = prefix + rest
        out[key] = value
    return out


# --- loading into a model ------------------------------------------------------------------

@dataclass
class LoadReport:
    """What :func:`load_weights` did."""

    source: str
    layout: str
    dropped_classifier: bool = False
    sha256_verified: bool = False
    epoch: int | None = None
    meta: dict = field(default_factory=dict)
    known: KnownWeights | None = None


def load_weights(
    model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor], verify: bool = True,
    expect: KnownWeights | None = None,
) -> LoadReport:
    """Load a checkpoint into ``model`` (in place).

    ``source`` is a path (``.pth``/``.pt``/``.tar`` or ``.safetensors``) or a state dict. torchreid
    layouts are converted. A classifier whose size does not match the model's is dropped with a
    warning (the model keeps its own); any other missing or unexpected key raises
    :class:`WeightsError` listing them.

    With ``verify``, a file is recognised by its sha256 (:func:`identify_weights`, whatever it is
    called); a known checkpoint's :class:`Preprocessing` is then attached to ``model`` as
    ``model.preprocessing``, so that evaluation, extraction and export use its input size and
    mean/std unless told otherwise. ``expect`` names the known checkpoint the file must be
    (see :func:`identify_weights`).
    """
    known = None
    if isinstance(source, Mapping):
        state, name = unwrap_state_dict(source), "state dict"
        meta = checkpoint_meta(source)
    else:
        name = str(source)
        if (verify or expect is not None) and Path(source).is_file():
            known = identify_weights(source, expect)
        state, meta = read_checkpoint_info(source, verify=False)
    layout = detect_layout(state)
    arch = getattr(model, "arch", None)
    if isinstance(arch, OSNetArch):
        state = from_torchreid(state, arch)
    epoch = meta.get("epoch")
    report = LoadReport(name, layout, sha256_verified=known is not None,
                        epoch=int(epoch) if isinstance(epoch, (int, float)) else None, meta=meta,
                        known=known)

    own = model.state_dict()
    cls_keys = [k for k in state if k.startswith("classifier.")]
    if cls_keys:
        fits = all(k in own and own[k].shape == state[k].shape for k in cls_keys)
        if not fits:
            size = state.get("classifier.weight", torch.empty(0)).shape[:1]
            level = logging.WARNING if getattr(model, "classifier", None) is not None else logging.INFO
            logger.log(level, "%s: dropping classifier of size %s (model has %s classes)",
                       name, tuple(size), getattr(model, "num_classes", 0))
            for k in cls_keys:
                del state[k]
            report.dropped_classifier = True

    own_keys = set(own)
    if report.dropped_classifier:
        own_keys = {k for k in own_keys if not k.startswith("classifier.")}
    missing = sorted(own_keys - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(state) & set(own) if state[k].shape != own[k].shape)
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:12])}"
                         + (" ..." if len(missing) > 12 else ""))
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:12])}"
                         + (" ..." if len(unexpected) > 12 else ""))
        if mismatched:
            parts.append("shape mismatches: " + ", ".join(
                f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched[:8]))
        raise WeightsError(f"{name} (layout {layout}) does not fit the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=not report.dropped_classifier)
    if known is not None:
        model.preprocessing = known.preprocessing  # type: ignore[assignment]
        logger.info("loaded %s: the known checkpoint %s/%s (sha256 verified)", name, known.model,
                    known.tag)
    logger.info("loaded %s (layout %s)", name, layout)
    return report


def save_weights(
    model: nn.Module, path: str | os.PathLike, layout: str = "omnireid"
) -> Path:
    """Write the model's weights atomically.

    ``layout`` is ``omnireid``, ``torchreid`` (the torchreid layout that fits the architecture),
    ``torchreid_osnet`` or ``torchreid_osnet_ain``. A ``.safetensors`` suffix writes safetensors,
    anything else a ``torch.save`` zip file holding a plain state dict.
    """
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if layout != "omnireid":
        arch = getattr(model, "arch", None)
        if not isinstance(arch, OSNetArch):
            raise WeightsError("only OSNet models have a torchreid layout to convert to")
        state = to_torchreid(state, arch, None if layout == "torchreid" else layout)
    if path.suffix != ".safetensors":
        return atomic_torch_save(state, path)
    save_file = require("safetensors.torch", "deploy", "writing .safetensors").save_file
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    return path


__all__ = [
    "INPosition", "KNOWN_WEIGHTS", "KnownWeights", "LoadReport", "Preprocessing", "WeightsError",
    "checkpoint_meta", "detect_layout", "from_torchreid", "identify_weights", "known_weights",
    "load_weights", "preprocessing_of", "read_checkpoint", "read_checkpoint_info", "save_weights",
    "sha256_of", "to_torchreid",
]
