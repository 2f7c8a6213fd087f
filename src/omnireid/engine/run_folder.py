"""A run folder belongs to one run.

:class:`RunFolder` takes an exclusive lock on the output folder (``fcntl.flock`` on
``.omnireid.lock``, which records who holds it), so a second writer is refused with a message
that names the holder; the lock goes with the process, so a killed run never leaves a stale lock
behind (processes it forked, such as data-loader workers, do not keep it). A folder that already
holds a run's results is refused unless the caller resumes that run or asks to overwrite it, and
a resumed run never starts before its new settings have been checked against the checkpoint.

Long jobs made of many runs (``omnireid nas``, ``omnireid reproduce``) use
:func:`claim_run_folder`: the same lock, plus a marker ``run.json`` that records the kind of job
and a fingerprint of its recipe. The same job with the same recipe continues in the folder (an
interrupted job resumes); anything else is refused unless ``overwrite=True``, and so is a
non-empty folder without a marker (it holds something else).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnireid.errors import RunFolderError
from omnireid.files import make_dirs, output_error, pid_alive, remove_stale_temps, write_json

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_NAME = ".omnireid.lock"
#: What a training run writes into its folder (``--overwrite`` removes exactly these).
RUN_FILES = ("config.yaml", "metrics.jsonl", "last.pt", "best.pt", "model.pth", "summary.json",
             "curves.png", "skipped_images.tsv", "tb")
#: The files that show a folder holds a run.
RUN_MARKERS = ("config.yaml", "metrics.jsonl", "last.pt", "model.pth", "summary.json")


def holds_run(folder: str | os.PathLike) -> list[str]:
    """The run files present in ``folder`` (empty: no run there)."""
    folder = Path(folder)
    return [name for name in RUN_MARKERS if (folder / name).exists()]


def marked_by(folder: str | os.PathLike, kind: str, fingerprint: str) -> bool:
    """Whether ``folder``'s marker says it holds a ``kind`` job of this recipe ``fingerprint``."""
    marker = Path(folder) / MARKER
    try:
        old = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(old, dict) and old.get("kind") == kind and old.get("fingerprint") == fingerprint


#: How long to wait for the lock when the run that took it has died and some process still holds
#: the locked file open (one forked before :func:`_drop_locks_in_child` existed, or by code that
#: bypasses ``os.fork``).
ORPHAN_WAIT_S = 15.0

#: File descriptors of the lock files this process holds (:meth:`RunFolder.acquire`).
_HELD_LOCK_FDS: set[int] = set()


def _drop_locks_in_child() -> None:
    """After ``os.fork``, in the child: point every inherited lock descriptor at ``/dev/null``.

    A lock taken with ``flock`` belongs to the open file, which a forked child shares. A
    data-loader worker forked by a training run therefore held the run's folder locked after the
    run was killed, until the worker itself exited -- which a PyTorch worker with a batch still
    in its queue's pipe never does once its parent is gone. Resuming the killed run was then
    refused as "in use". The child never needs the lock; the descriptor is kept open (on
    ``/dev/null``) so that nothing else can reuse its number under the parent's file object."""
    if not _HELD_LOCK_FDS:
        return
    try:
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in list(_HELD_LOCK_FDS):
        try:
            os.dup2(null, fd)
        except OSError:
            pass
    os.close(null)
    _HELD_LOCK_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_locks_in_child)


def _lock(fh, holder) -> bool:
    """Take the exclusive lock on ``fh`` without blocking. When the recorded holder ran on this
    machine and is dead, the lock is still held only by its orphaned worker processes: wait up
    to :data:`ORPHAN_WAIT_S` for them to exit."""
    deadline = None
    while True:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            info = holder()
            if info.get("host") not in (None, socket.gethostname()) or pid_alive(info.get("pid")):
                return False
            deadline = deadline or time.monotonic() + ORPHAN_WAIT_S
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


def _describe_holder(info: Mapping[str, Any]) -> str:
    parts = [f"pid {info.get('pid', '?')}"]
    if info.get("host") and info.get("host") != socket.gethostname():
        parts.append(f"on {info['host']}")
    if info.get("command"):
        parts.append(f"`{info['command']}`")
    if info.get("started"):
        parts.append(f"started {info['started']}")
    return ", ".join(parts)


class RunFolder:
    """Exclusive use of an output folder for the duration of a ``with`` block.

    Args:
        folder: the output folder (created if needed).
        command: how the run was started, recorded in the lock file for other processes'
            error messages.
    """

    def __init__(self, folder: str | os.PathLike, command: str | None = None) -> None:
        self.folder = Path(folder)
        self.command = command if command is not None else _command_line()
        self._fh = None

    @property
    def lock_path(self) -> Path:
        return self.folder / LOCK_NAME

    def holder(self) -> dict[str, Any]:
        """What the lock file says about the process that holds (or last held) the folder."""
        try:
            return json.loads(self.lock_path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> RunFolder:
        """Take the lock; raise :class:`RunFolderError` naming the holder when another process has it."""
        make_dirs(self.folder)
        try:
            fh = open(self.lock_path, "a+")
        except OSError as exc:
            raise output_error(self.lock_path, exc) from None
        if fcntl is not None and not _lock(fh, self.holder):
            holder = self.holder()
            fh.close()
            raise RunFolderError(
                    f"{self.folder} is in use by another run ({_describe_holder(holder)}); wait for it "
                    "to finish or write to another folder (-o / train.output_dir)") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "started": _dt.datetime.now().isoformat(timespec="seconds")}
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(info) + "\n")
            fh.flush()
        except OSError as exc:
            fh.close()
            raise output_error(self.lock_path, exc) from None
        self._fh = fh
        _HELD_LOCK_FDS.add(fh.fileno())
        remove_stale_temps(self.folder, any_pid=True)
        return self

    def release(self) -> None:
        if self._fh is not None:
            _HELD_LOCK_FDS.discard(self._fh.fileno())
            if fcntl is not None:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RunFolder:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def check_new_run(self, overwrite: bool, resuming_from: Path | None = None) -> None:
        """Refuse to start a run in a folder that holds another run's results, unless
        ``overwrite`` (which removes them) or the folder's own checkpoint is being resumed."""
        present = holds_run(self.folder)
        if not present:
            return
        if resuming_from is not None and resuming_from.resolve().parent == self.folder.resolve():
            return
        if overwrite:
            self.clear(RUN_FILES)
            return
        what = _summarise_run(self.folder)
        raise RunFolderError(
            f"{self.folder} already holds a run ({what}); continue it with --resume, replace it with "
            "--overwrite, or write to another folder (-o / train.output_dir)")

    def clear(self, names: Iterable[str]) -> list[str]:
        """Remove the named run files (and folders) of a previous run."""
        removed = []
        for name in names:
            path = self.folder / name
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
                else:
                    continue
            except OSError as exc:
                raise output_error(path, exc) from None
            removed.append(name)
        if removed:
            logger.info("%s: removed the previous run's %s (overwrite)", self.folder, ", ".join(removed))
        return removed


def _command_line() -> str | None:
    """How this process was started, as a user would type it."""
    if not sys.argv or not sys.argv[0]:
        return None
    prog = Path(sys.argv[0]).name
    if prog in ("__main__.py", "omnireid"):
        prog = "omnireid"
    return " ".join([prog, *sys.argv[1:]])


def _summarise_run(folder: Path) -> str:
    """A few words on the run in ``folder``: how far it got."""
    summary = folder / "summary.json"
    if summary.is_file():
        try:
            info = json.loads(summary.read_text())
            return f"finished, {info.get('epochs', '?')} epochs"
        except (OSError, ValueError):
            pass
    metrics = folder / "metrics.jsonl"
    if metrics.is_file():
        try:
            lines = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
            return f"{len(lines)} epoch(s) done" + ("" if (folder / "last.pt").is_file() else ", no checkpoint")
        except OSError:
            pass
    return ", ".join(holds_run(folder))


MARKER = "run.json"


@dataclass(frozen=True)
class ClaimedFolder:
    """A folder claimed by :func:`claim_run_folder`. ``resumed``: it already held this job's
    files when claimed."""

    path: Path
    resumed: bool


def fingerprint_of(recipe: Mapping[str, Any]) -> str:
    """A short stable hash of plain recipe data (key order does not matter)."""
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextmanager
def claim_run_folder(folder: str | os.PathLike, kind: str, fingerprint: str, *, overwrite: bool = False,
                     describe: str = "") -> Iterator[ClaimedFolder]:
    """Hold ``folder`` for a job of ``kind`` with the recipe ``fingerprint`` while the block runs.

    Args:
        folder: the job's folder (created).
        kind: the job, e.g. ``"nas"``; a folder of another kind is refused.
        fingerprint: identifies the recipe (:func:`fingerprint_of`); the same kind with the same
            fingerprint continues, another fingerprint is refused.
        overwrite: take the folder whatever it holds (its files are replaced as the job writes).
        describe: shown in the marker and in messages (e.g. the recipe's sources).

    Raises:
        RunFolderError: the folder is held by a live process, or holds other results.
    """
    with RunFolder(folder) as held:
        path = held.folder
        marker = path / MARKER
        resumed = False
        if marker.is_file() and not overwrite:
            try:
                old = json.loads(marker.read_text())
            except (OSError, ValueError):
                raise RunFolderError(f"{marker} is not valid JSON; pass --overwrite to reuse {path}") from None
            if old.get("kind") != kind:
                raise RunFolderError(f"{path} holds the results of a {old.get('kind')!r} run, not {kind!r}; "
                                     "choose another output folder or pass --overwrite")
            if old.get("fingerprint") != fingerprint:
                raise RunFolderError(f"{path} holds another {kind} run (made with a different recipe: "
                                     f"{old.get('describe') or old.get('fingerprint')}); choose another "
                                     "output folder, or pass --overwrite to replace it")
            resumed = True
        elif not overwrite:
            others = sorted(p.name for p in path.iterdir() if p.name != LOCK_NAME)
            if others:
                raise RunFolderError(f"{path} is not empty and was not written by omnireid {kind} "
                                     f"({', '.join(others[:3])}...); choose another output folder or "
                                     "pass --overwrite")
        if not resumed:
            write_json(marker, {"kind": kind, "fingerprint": fingerprint, "describe": describe})
        yield ClaimedFolder(path, resumed)


__all__ = ["ClaimedFolder", "claim_run_folder", "fingerprint_of", "LOCK_NAME", "RUN_FILES", "RunFolder", "holds_run",
           "marked_by"]
