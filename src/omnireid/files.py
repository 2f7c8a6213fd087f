"""Writing files so that a crash, a full disk or a read-only folder never leaves a torn file.

Every output of the library goes through :func:`atomic_path` (or the helpers built on it): the
data is written to a temporary file in the same folder (``.NAME.PID.tmpSUFFIX``), flushed to
disk, and renamed over the destination with ``os.replace``. A reader therefore sees the old file
or the new one, never half of one. When writing fails, the temporary file is removed and an
:class:`~omnireid.errors.OutputError` names the destination and the reason (no space left,
read-only file system, permission denied). A process killed in the middle can leave its
temporary file behind; :func:`remove_stale_temps` removes those of processes that are gone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from omnireid.errors import OutputError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp(?:\.[^.]+)?$")

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "file too large (file size limit reached)",
}


_FOLDER_REASONS = {
    errno.EEXIST: "it exists and is not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


def output_error(path: str | os.PathLike, exc: BaseException) -> OutputError:
    """An :class:`OutputError` for a failed write of ``path``."""
    if isinstance(exc, OSError):
        reason = _REASONS.get(exc.errno or -1) or _FOLDER_REASONS.get(exc.errno or -1) or exc.strerror or str(exc)
    else:
        reason = str(exc)
    err = OutputError(f"cannot write {path}: {reason}")
    err.errno = getattr(exc, "errno", None)
    return err


def is_write_failure(exc: BaseException) -> bool:
    """An ``OSError`` caused by the destination (space, permissions, read-only), not a bug."""
    return isinstance(exc, OSError) and exc.errno in _REASONS


def temp_path(path: Path) -> Path:
    """The temporary name used while writing ``path`` (keeps the suffix: some writers need it)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")


def _fsync(path: Path, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:  # pragma: no cover - some platforms cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - not supported everywhere
        pass
    finally:
        os.close(fd)


def make_dirs(folder: str | os.PathLike) -> Path:
    """``mkdir -p`` whose failures name the folder as an :class:`OutputError`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_write_failure(exc) or isinstance(exc, (FileExistsError, NotADirectoryError)):
            raise output_error(folder, exc) from None
        raise
    return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, the file written there
    replaces ``path`` (after ``fsync`` when ``durable``).

    Whatever happens, no temporary file stays behind. A write that fails for lack of space or
    permission raises :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    make_dirs(path.parent)
    tmp = temp_path(path)
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if is_write_failure(exc):
            raise output_error(path, exc) from None
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    if durable:
        _fsync(path.parent, directory=True)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8",
                 durable: bool = True) -> Iterator[IO[Any]]:
    """``open(path, mode)`` that replaces ``path`` atomically when the block succeeds."""
    if "b" in mode:
        encoding = None
    with atomic_path(path, durable=durable) as tmp, open(tmp, mode, encoding=encoding) as fh:
        yield fh


def write_text(path: str | os.PathLike, text: str, *, durable: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path, "w", durable=durable) as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, default=None,
               durable: bool = True) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=indent, default=default) + "\n", durable=durable)


class _RecordingWriter:
    """A file wrapper that keeps the ``OSError`` of a failed write: ``torch.save`` turns it into
    an unhelpful ``RuntimeError`` ("unexpected pos ...")."""

    def __init__(self, fh) -> None:
        self.fh = fh
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` via a temporary file + fsync + ``os.replace`` (:func:`atomic_path`).

    Raises:
        OutputError: the file could not be written (disk full, read-only, no permission); no
            temporary file is left and an existing ``path`` is untouched.
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        writer = _RecordingWriter(fh)
        try:
            # deferred import: omnireid.files serves the CLI's error handling, which must not
            # import torch for `omnireid --help` (tests/test_package_imports.py)
            import torch

            torch.save(obj, writer)
            fh.flush()
        except RuntimeError:
            if writer.error is not None:
                raise output_error(path, writer.error) from None
            raise
    return path


@contextlib.contextmanager
def locked(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock beside ``path`` (the file ``.<name>.lock`` in its folder) for the
    duration of the block, waiting for any other holder first. Two processes (or two threads)
    that change the same file or folder under this lock cannot overwrite each other's work.
    POSIX only; a no-op elsewhere."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    with open(path.with_name(f".{path.name}.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pid_alive(pid: object) -> bool:
    """Whether the process ``pid`` (on this machine) still runs; a value that is not a process
    id counts as not running."""
    try:
        pid = int(pid)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, *, any_pid: bool = False) -> list[Path]:
    """Remove the temporary files that interrupted writes left in ``folder``.

    A temporary file of a process that still runs is kept unless ``any_pid`` (for a caller that
    holds the folder's lock and so knows no one else writes there). Returns what was removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = _TEMP_NAME.match(entry.name)
        if not m or not entry.is_file():
            continue
        pid = int(m.group("pid"))
        if not any_pid and pid_alive(pid):
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    if removed:
        logger.info("%s: removed %d temporary file(s) left by an interrupted write: %s", folder,
                    len(removed), ", ".join(p.name for p in removed[:5]))
    return removed


__all__ = ["atomic_path", "atomic_torch_save", "atomic_write", "is_write_failure", "make_dirs", "output_error",
           "remove_stale_temps", "temp_path", "write_json", "write_text"]
