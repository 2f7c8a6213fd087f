"""One small name -> builder registry (models, datasets, losses) and the one "did you mean" hint.

Every set of names the library accepts (samplers, optimisers, schedules, backends, index kinds,
config keys, recipes ...) lives in the module that implements it; an unknown name is reported with
:func:`unknown_name_message` (near misses, then the valid names) whatever the set.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from omnireid.errors import UnknownNameError, UsageError

T = TypeVar("T", bound=Callable[..., Any])
V = TypeVar("V")


def did_you_mean(name: str, valid: Iterable[str], n: int = 3) -> str:
    """`` Did you mean 'a', 'b'?`` for the names of ``valid`` close to ``name`` (difflib), or ``""``."""
    close = difflib.get_close_matches(name, list(valid), n=n, cutoff=0.5)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


def unknown_name_message(kind: str, name: str, valid: Iterable[str]) -> str:
    """``unknown KIND 'name'. Did you mean ...? Valid names: a, b, c`` (the one wording)."""
    valid = list(valid)
    return f"unknown {kind} {name!r}.{did_you_mean(name, valid)} Valid names: {', '.join(valid)}"


def lookup(kind: str, name: str, table: Mapping[str, V], error: type[Exception] = UsageError) -> V:
    """``table[name]``, or ``error`` with :func:`unknown_name_message` (for plain dicts of
    choices; a :class:`Registry` does the same with :class:`UnknownNameError`)."""
    try:
        return table[name]
    except (KeyError, TypeError):
        raise error(unknown_name_message(kind, name, table)) from None


def check_name(kind: str, name: str, valid: Iterable[str], error: type[Exception] = UsageError) -> str:
    """``name`` if it is one of ``valid``, else ``error`` with :func:`unknown_name_message`."""
    valid = list(valid)
    if name not in valid:
        raise error(unknown_name_message(kind, name, valid))
    return name


class Registry(Generic[T]):
    """Maps explicit names to builders.

    Registering a name twice raises; looking up an unknown name raises an :class:`~omnireid.errors.UnknownNameError`
    (a ``KeyError``) that lists
    the close matches and the valid names.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(fn: T) -> T:
            self.add(name, fn)
            return fn

        return decorator

    def add(self, name: str, fn: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = fn

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        return unknown_name_message(self.kind, name, self.names())

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
