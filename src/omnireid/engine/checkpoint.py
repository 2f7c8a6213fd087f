"""Training checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint holds everything a run needs to continue exactly where it stopped: model,
optimiser and schedule state, the next epoch, the best metric so far, the sampler seed and the
random-number-generator states (Python, NumPy, torch CPU and accelerator, the loader's
generator). Files are written to a temporary name in the same folder, flushed to disk and then
renamed over the old file, so a crash (even ``kill -9``) leaves either the old or the new
checkpoint, never a torn one.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omnireid.errors import CheckpointError, MissingFileError, clean_message
from omnireid.files import atomic_torch_save

logger = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "best.pt"


def rng_state(loader_generator: torch.Generator | None = None) -> dict[str, Any]:
    """The state of every random generator a training run draws from (plain, loadable types)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if loader_generator is not None:
        state["loader"] = loader_generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], loader_generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if loader_generator is not None and "loader" in state:
        loader_generator.set_state(state["loader"])


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint safely (``weights_only=True``) onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path} is a folder, not a checkpoint file" if path.is_dir()
                               else f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torn, truncated or foreign file
        detail = clean_message(str(exc)).splitlines()
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: "
                              f"{detail[0] if detail else ''})") from None
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise CheckpointError(f"{path}: not an omnireid training checkpoint (no model/epoch entries)")
    return state


def check_finite(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` if the model or optimiser state holds NaN/inf."""
    bad = non_finite_entries({"model": state.get("model", {}), "optimizer": state.get("optimizer", {})})
    if bad:
        raise CheckpointError(f"{path}: holds non-finite values ({len(bad)} tensor(s), e.g. "
                              f"{', '.join(bad[:3])}); it is not a usable state")


#: Settings a resumed run may change; each is applied from the next epoch on. Every other
#: difference between the checkpoint's settings and the new ones refuses the resume.
RESUMABLE_CHANGES = (
    "optim.lr", "optim.weight_decay", "optim.grad_clip", "sched.", "train.max_epoch", "train.eval_freq",
    "train.progress", "train.print_freq", "train.tensorboard", "train.save_curves", "train.num_threads", "train.device",
    "train.output_dir", "train.max_steps_per_epoch", "train.deterministic", "train.amp",
    "train.channels_last", "test.", "data.targets", "data.num_workers", "data.on_bad_image", "data.root",
    "expected",
)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data and (prefix.count(".") < 1 or prefix.endswith("synthetic")):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


def resume_changes(saved: dict[str, Any], new: dict[str, Any], defaults: dict[str, Any] | None = None
                   ) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any, Any]]]:
    """Compare a checkpoint's settings with a resumed run's.

    Returns ``(allowed, refused)``: lists of ``(dotted key, old value, new value)``; ``allowed``
    are the changes in :data:`RESUMABLE_CHANGES`, ``refused`` all others. A setting the
    checkpoint does not record (written before the setting existed) counts as unchanged when the
    new value is its default in ``defaults``.
    """
    old_flat, new_flat = _flatten(saved), _flatten(new)
    default_flat = _flatten(defaults) if defaults is not None else {}
    allowed, refused = [], []
    for key in sorted(set(old_flat) | set(new_flat)):
        old, value = old_flat.get(key), new_flat.get(key)
        if old == value or (key not in old_flat and key in default_flat and value == default_flat[key]):
            continue
        ok = any(key == p or (p.endswith(".") and key.startswith(p)) for p in RESUMABLE_CHANGES)
        (allowed if ok else refused).append((key, old, value))
    return allowed, refused


def describe_changes(changes: list[tuple[str, Any, Any]]) -> str:
    """``optim.lr 0.0015 -> 0.1, model.name osnet_x0_25 -> osnet_ain_x0_25``."""
    return ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in changes)


def non_finite_entries(state: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point tensors in a (nested) state that hold NaN or infinity."""
    bad: list[str] = []
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() and not bool(torch.isfinite(state).all()):
            bad.append(prefix or "tensor")
    elif isinstance(state, dict):
        for k, v in state.items():
            bad += non_finite_entries(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            bad += non_finite_entries(v, f"{prefix}[{i}]")
    return bad


def find_resume(path_or_dir: str | os.PathLike) -> Path:
    """A checkpoint file, or ``DIR/last.pt`` for a run folder."""
    p = Path(path_or_dir)
    if p.is_dir():
        p = p / LAST
    if not p.is_file():
        raise MissingFileError(f"nothing to resume: {p} does not exist")
    return p


__all__ = ["BEST", "LAST", "RESUMABLE_CHANGES", "CheckpointError", "atomic_torch_save", "check_finite",
           "describe_changes", "find_resume", "load_checkpoint", "non_finite_entries", "resume_changes",
           "rng_state", "set_rng_state"]
