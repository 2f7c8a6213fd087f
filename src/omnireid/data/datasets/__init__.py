"""Dataset readers, one file each, and the ``DATASETS`` registry.

``load_dataset(name, root)`` is the one entry point: it looks the name up, reads the data and
optionally applies ``combineall``. Several names separated by ``+`` (``"market1501+dukemtmcreid"``)
build a multi-source training set (see :mod:`omnireid.data.combine`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omnireid.data.combine import combine_all, combine_datasets

# Importing a reader module registers its names.
from omnireid.data.datasets import (  # noqa: E402, F401  (registration side effects)
    cuhk01,
    cuhk03,
    custom,
    dukemtmcreid,
    grid,
    ilids,
    market1501,
    msmt17,
    prid,
    synthetic,
    viper,
)
from omnireid.data.datasets.registry import DATASETS, check_reader_options
from omnireid.data.records import ReIDDataset
from omnireid.errors import UsageError


def load_dataset(
    name: str, root: str | Path | None = None, *, combineall: bool = False, **kwargs: Any
) -> ReIDDataset:
    """Read a registered dataset.

    Args:
        name: a registered name (``list_datasets()``), or several joined by ``+`` to combine
            their training sets (each sample keeps its dataset index in ``dsetid``).
        root: the data root that holds the dataset folder (``ROOT/market1501/...``). For the
            custom readers it is the folder or CSV file itself; for the synthetic datasets it is
            the cache folder (default ``$OMNIREID_CACHE`` or ``~/.cache/omnireid``).
        combineall: also train on query and gallery (junk/distractor ids left out).
        **kwargs: reader options, e.g. ``split_id=0``, ``labeled=True`` (cuhk03),
            ``market1501_500k=True``.

    Returns:
        a :class:`ReIDDataset`; readers put counts of skipped files in ``extra``.
    """
    names = [n.strip() for n in name.split("+") if n.strip()]
    if len(names) > 1:
        parts = [load_dataset(n, root, combineall=combineall, **kwargs) for n in names]
        return combine_datasets(parts)
    if not names:
        raise UsageError(f"dataset name {name!r} names no dataset")
    reader = DATASETS.get(names[0])
    if root is None and not synthetic.is_synthetic(names[0]):
        raise UsageError(f"dataset {name!r} needs a data root (root=...)")
    check_reader_options(names[0], kwargs, f"dataset {names[0]!r}")
    dataset = reader(root, **kwargs)
    if combineall:
        dataset = combine_all(dataset)
    return dataset


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted."""
    return sorted(DATASETS.names())


__all__ = ["DATASETS", "load_dataset", "list_datasets"]
