"""The dataset registry: name -> reader function ``reader(root, **options) -> ReIDDataset``,
and the check of a reader's options against its signature."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from omnireid.errors import UsageError
from omnireid.registry import Registry, did_you_mean

DATASETS: Registry = Registry("dataset")


def reader_options(name: str) -> tuple[list[str], bool]:
    """The keyword options of reader ``name`` (each part of an ``a+b`` name) and whether it
    accepts any keyword (``**options``). Unknown names raise (the registry's message)."""
    names: list[str] = []
    anything = False
    for part in (n.strip() for n in name.split("+") if n.strip()):
        params = list(inspect.signature(DATASETS.get(part)).parameters.values())[1:]  # skip root
        for p in params:
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                anything = True
            elif p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
    return names, anything


def check_reader_options(name: str, options: Mapping[str, Any], where: str,
                         extra_keys: Iterable[str] = ()) -> None:
    """Raise if reader ``name`` is unknown or an option is not one of the reader's (the message
    lists the valid keys, ``extra_keys`` first)."""
    valid, anything = reader_options(name)
    if anything:
        return
    extra_keys = list(extra_keys)
    for key in options:
        if key not in valid:
            choices = ", ".join([*extra_keys, *valid]) or "none"
            raise UsageError(f"{where}: {key!r} is not an option of the {name} reader."
                             f"{did_you_mean(key, valid, n=2)} "
                             f"Valid {'keys' if extra_keys else 'options'}: {choices}")
