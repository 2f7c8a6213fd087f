"""Which dataset, where, under what name: the per-dataset settings of recipes and ``--data``.

A dataset is named either by a plain string (``"market1501"``: the registered reader, reading
from the run's common data root) or by a mapping that carries its own settings::

    {name: csv_manifest, root: /data/siteB.csv, as: siteB, duplicates: drop}

``name`` is the registered reader, ``root`` its data root (for the custom readers: the folder or
CSV file itself), ``as`` the display name used in results, reports and plots, and every other key
is an option of that reader (``split_id``, ``test_fraction``, ``allow_absolute`` ...). Reader
options are checked against the reader's signature, so a misspelt option is an error that names
it and suggests the nearest valid one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from omnireid.data.datasets import load_dataset
from omnireid.data.datasets.registry import check_reader_options, reader_options
from omnireid.data.records import ReIDDataset
from omnireid.errors import UsageError

SPEC_KEYS = ("name", "root", "as")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a run: reader ``name``, its ``root``, display name and reader options."""

    name: str
    root: str | None = None
    display: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The name results are reported under (``as``, else the reader name)."""
        return self.display or self.name

    def to_plain(self) -> str | dict[str, Any]:
        """The recipe form: a string when nothing but the name is set."""
        if self.root is None and self.display is None and not self.options:
            return self.name
        out: dict[str, Any] = {"name": self.name}
        if self.root is not None:
            out["root"] = self.root
        if self.display is not None:
            out["as"] = self.display
        return {**out, **self.options}


def parse_dataset_spec(item: str | Mapping[str, Any], where: str = "dataset") -> DatasetSpec:
    """A :class:`DatasetSpec` from the string or mapping form (``where`` names it in errors)."""
    if isinstance(item, str):
        name = item.strip()
        if not name:
            raise UsageError(f"{where}: empty dataset name")
        return DatasetSpec(name)
    if not isinstance(item, Mapping):
        raise UsageError(f"{where}: expected a dataset name or a mapping with 'name', got {item!r}")
    data = {str(k): v for k, v in item.items()}
    name = data.pop("name", None)
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{where}: a dataset mapping needs 'name' (the reader), got {dict(item)!r}")
    root = data.pop("root", None)
    display = data.pop("as", None)
    for key, value in (("root", root), ("as", display)):
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{where}.{key}: expected a string, got {value!r}")
    if display is not None and not display.strip():
        raise UsageError(f"{where}.as: empty display name")
    return DatasetSpec(name.strip(), root, display, data)


def parse_dataset_list(text: str, where: str = "--data") -> list[DatasetSpec]:
    """The command-line form: ``market1501,dukemtmcreid`` or a YAML list/mapping such as
    ``[{name: csv_manifest, root: b.csv, as: siteB}, market1501]``."""
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            loaded = yaml.safe_load(stripped)
        except yaml.YAMLError as exc:
            raise UsageError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
        items = loaded if isinstance(loaded, list) else [loaded]
    else:
        items = [n for n in (part.strip() for part in stripped.split(",")) if n]
    if not items:
        raise UsageError(f"{where} names no dataset")
    return [parse_dataset_spec(item, f"{where}[{i}]") for i, item in enumerate(items)]


def check_spec(spec: DatasetSpec, where: str = "dataset", spec_keys: bool = True) -> None:
    """Raise if the reader is unknown or an option is not one of the reader's (the message lists
    the valid keys, with ``name``/``root``/``as`` when ``spec_keys``)."""
    check_reader_options(spec.name, spec.options, where, SPEC_KEYS if spec_keys else ())


def check_unique_labels(specs: Sequence[DatasetSpec], where: str) -> None:
    """Two datasets of one list may not be reported under the same name."""
    seen: dict[str, DatasetSpec] = {}
    for spec in specs:
        if spec.label in seen:
            raise UsageError(f"{where}: two datasets are named {spec.label!r}; give each its own "
                             f"display name with 'as:' (e.g. {{name: {spec.name}, root: ..., as: siteB}})")
        seen[spec.label] = spec


def load_dataset_spec(
    spec: DatasetSpec, *, root: str | None = None, combineall: bool = False,
    defaults: Mapping[str, Any] | None = None,
) -> ReIDDataset:
    """Read the dataset ``spec`` names, from its own root or else ``root``.

    ``defaults`` are reader options applied under the spec's own (e.g. the run's synthetic
    generator settings for the ``synthetic_*`` readers). The result carries the display name.
    """
    options = {**(defaults or {}), **spec.options}
    dataset = load_dataset(spec.name, spec.root if spec.root is not None else root,
                           combineall=combineall, **options)
    if spec.display is None:
        return dataset
    return dataclasses.replace(dataset, name=spec.display, extra={**dataset.extra, "reader": spec.name})


def labels(specs: Iterable[DatasetSpec]) -> list[str]:
    return [s.label for s in specs]


__all__ = ["DatasetSpec", "SPEC_KEYS", "check_spec", "check_unique_labels", "labels", "load_dataset_spec",
           "parse_dataset_list", "parse_dataset_spec", "reader_options"]
