"""The errors a user can act on.

Everything here derives from :class:`OmnireidError`. The command line prints these as one line
naming the file or setting and exits non-zero; any other exception is a bug and keeps its
traceback. Each class also derives from the built-in exception it refines (``ValueError``,
``OSError``, ``KeyError`` ...), so code that caught the built-in one keeps working.

===========================  =================================================================
``ConfigError``              a setting that cannot be used; says where it came from
``UsageError``               a bad argument value or combination (API or command line)
``MissingFileError``         a file or folder named by the user does not exist
``DataError``                a dataset, manifest or image list that cannot be used
``DatasetLayoutError``       data missing on disk or not in the expected layout
``ImageError``               an image file that cannot be decoded (names the file)
``CheckpointError``          a checkpoint or weights file that cannot be used
``RunFolderError``           an output folder that holds or is used by another run
``NonFiniteError``           training produced NaN/inf (loss, gradients, statistics)
``OutputError``              a file that could not be written (disk full, read-only ...)
``MissingExtraError``        an optional package is not installed (names the extra)
``UnknownNameError``         an unknown model/dataset/loss name (lists the valid ones)
===========================  =================================================================
"""

from __future__ import annotations

import re


class OmnireidError(Exception):
    """Base class of the errors a user can fix; ``exit_code`` is the CLI's exit status."""

    exit_code = 2


class ConfigError(OmnireidError, ValueError):
    """A setting that cannot be used: unknown key, wrong type or bad value.

    ``keys`` are the dotted settings involved (e.g. ``["train.amp"]``); the message says where
    each came from (the command line, a recipe file or a default) once the loader knows.
    """

    def __init__(self, message: str, keys: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.keys = list(keys)


class UsageError(OmnireidError, ValueError):
    """An argument value or combination that cannot work (a size of 0, a negative count ...)."""


class DataError(OmnireidError, ValueError):
    """Data that cannot be used as given (the message names the file and the problem)."""


class DatasetLayoutError(DataError, FileNotFoundError):
    """The data on disk is missing or does not have the expected layout.

    The message names the path that was looked for and shows the expected layout.
    """

    def __init__(self, problem: str, layout: str | None = None) -> None:
        message = problem
        if layout:
            message += "\nExpected layout:\n" + layout.rstrip()
        super().__init__(message)


class ImageError(DataError, OSError):
    """An image file could not be read; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: object, reason: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason or ""
        super().__init__(f"cannot read image {path}: {reason}" if reason is not None else str(path))

    def __reduce__(self):  # survive the trip from a loader worker process
        return (type(self), (self.path, self.reason))


class CheckpointError(OmnireidError, ValueError):
    """A checkpoint or weights file that cannot be read or does not fit (names the file)."""


class MissingFileError(OmnireidError, FileNotFoundError):
    """A file or folder the user named does not exist (the message names it)."""


class RunFolderError(OmnireidError):
    """An output folder that is in use by another process or already holds another run."""


class NonFiniteError(OmnireidError, RuntimeError):
    """Training produced a NaN or infinite value; the message says what, where, and which
    checkpoint is the last good state."""

    exit_code = 1


class OutputError(OmnireidError, OSError):
    """A file could not be written (disk full, read-only folder, no permission); names the path."""


class MissingExtraError(OmnireidError, ImportError):
    """An optional package is needed; the message names the ``omnireid[extra]`` to install."""


class UnknownNameError(OmnireidError, KeyError):
    """An unknown registered name; the message lists near misses and the valid names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# Terminal control sequences (colours, cursor moves) and other control characters that must
# not reach a user's terminal inside an error message.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_message(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (newlines and tabs
    are kept), with trailing blanks removed from every line."""
    text = _CONTROL.sub("", _ANSI.sub("", str(text)))
    return "\n".join(line.rstrip() for line in text.splitlines()).strip()


__all__ = [
    "CheckpointError", "ConfigError", "DataError", "DatasetLayoutError", "ImageError", "MissingExtraError",
    "MissingFileError",
    "NonFiniteError", "OmnireidError", "OutputError", "RunFolderError", "UnknownNameError", "UsageError",
    "clean_message",
]
