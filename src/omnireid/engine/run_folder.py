"""A run folder belongs to one run: a lock while it is written, a marker that says whose it is.

``claim_run_folder(folder, kind, fingerprint)`` is a context manager used by long jobs
(``omnireid nas``, ``omnireid reproduce``):

* ``FOLDER/.lock`` is created exclusively and holds the process id and host; a second process
  that tries to write into the folder at the same time gets :class:`RunFolderError`. A lock left
  by a process that no longer exists (same host) is taken over.
* ``FOLDER/run.json`` records the kind of job and a fingerprint of its recipe. The same job with
  the same recipe continues in the folder (an interrupted run resumes); anything else is refused
  unless ``overwrite=True``. A non-empty folder without a marker is refused too (it holds
  something else).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOCK = ".lock"
MARKER = "run.json"


class RunFolderError(ValueError):
    """A run folder that is in use, or that holds another run's results (message says which)."""


@dataclass(frozen=True)
class RunFolder:
    """A claimed folder. ``resumed``: it already held this run's files when claimed."""

    path: Path
    resumed: bool


def fingerprint_of(recipe: Mapping[str, Any]) -> str:
    """A short stable hash of plain recipe data (key order does not matter)."""
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _take_lock(folder: Path) -> Path:
    lock = folder / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                owner = {}
            pid, host = owner.get("pid"), owner.get("host")
            if isinstance(pid, int) and host == me["host"] and not _pid_alive(pid):
                logger.warning("%s: taking over the lock of process %d, which no longer runs", folder, pid)
                lock.unlink(missing_ok=True)
                continue
            where = f"process {pid} on {host}" if pid else "another process"
            raise RunFolderError(f"{folder} is in use by {where} (lock file {lock}); wait for it to "
                                 f"finish or choose another output folder") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return lock
    raise RunFolderError(f"{folder}: could not take the lock {lock}")  # pragma: no cover


@contextmanager
def claim_run_folder(
    folder: str | os.PathLike,
    kind: str,
    fingerprint: str,
    *,
    overwrite: bool = False,
    describe: str = "",
) -> Iterator[RunFolder]:
    """Lock ``folder`` for this run while the block runs (see the module docstring).

    Args:
        folder: the run folder (created).
        kind: the job, e.g. ``"nas"``; a folder of another kind is refused.
        fingerprint: identifies the recipe (:func:`fingerprint_of`); the same kind with the same
            fingerprint continues, another fingerprint is refused.
        overwrite: take the folder whatever it holds (its files are replaced as the run writes).
        describe: shown in the marker (e.g. the command line).

    Raises:
        RunFolderError: the folder is locked by a live process, or holds other results.
    """
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    lock = _take_lock(path)
    try:
        marker = path / MARKER
        resumed = False
        if marker.is_file() and not overwrite:
            try:
                old = json.loads(marker.read_text())
            except ValueError:
                raise RunFolderError(f"{marker} is not valid JSON; pass --overwrite to reuse {path}") from None
            if old.get("kind") != kind:
                raise RunFolderError(f"{path} holds the results of a {old.get('kind')!r} run, not {kind!r}; "
                                     f"choose another output folder or pass --overwrite")
            if old.get("fingerprint") != fingerprint:
                raise RunFolderError(f"{path} holds another {kind} run (made with a different recipe: "
                                     f"{old.get('describe') or old.get('fingerprint')}); choose another "
                                     f"output folder, or pass --overwrite to replace it")
            resumed = True
        elif not overwrite:
            others = [p.name for p in path.iterdir() if p.name != LOCK]
            if others:
                raise RunFolderError(f"{path} is not empty and was not written by omnireid {kind} "
                                     f"({', '.join(sorted(others)[:3])}...); choose another output "
                                     f"folder or pass --overwrite")
        if not resumed:
            tmp = path / f".{MARKER}.tmp"
            tmp.write_text(json.dumps({"kind": kind, "fingerprint": fingerprint, "describe": describe},
                                      indent=2) + "\n")
            os.replace(tmp, marker)
        yield RunFolder(path, resumed)
    finally:
        lock.unlink(missing_ok=True)


__all__ = ["RunFolder", "RunFolderError", "claim_run_folder", "fingerprint_of"]
