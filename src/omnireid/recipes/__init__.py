"""Recipes shipped inside the package: the papers' training recipes, the demo and the search.

Each recipe is a YAML file in this folder. A recipe is named by its file name without
``.yaml``; ``omnireid train -c NAME`` (and ``omnireid nas -c NAME``) accept a packaged name
wherever they accept a path::

    list_recipes()                 # [Recipe(name='demo', kind='train', summary=...), ...]
    recipe_text("demo")            # the YAML, comments included (`omnireid recipes show demo`)
    resolve_recipe("demo")         # Path of the packaged file; an existing path is returned as is
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from omnireid.errors import MissingFileError
from omnireid.registry import did_you_mean

SUFFIX = ".yaml"


@dataclass(frozen=True)
class Recipe:
    """A packaged recipe: ``name`` (file name without ``.yaml``), ``kind`` (``train`` or
    ``nas``), ``summary`` (the first comment line of the file) and its ``path``."""

    name: str
    kind: str
    summary: str
    path: Path


def _folder() -> Path:
    return Path(str(resources.files(__name__)))


def _describe(path: Path) -> Recipe:
    lines = path.read_text(encoding="utf-8").splitlines()
    comments = [line.lstrip("#").strip() for line in lines if line.startswith("#")]
    summary = next((c for c in comments if c), "")
    kind = "nas" if any(line.startswith("nas:") for line in lines) else "train"
    return Recipe(path.name[: -len(SUFFIX)], kind, summary, path)


def list_recipes() -> list[Recipe]:
    """Every packaged recipe, sorted by name."""
    return [_describe(p) for p in sorted(_folder().glob(f"*{SUFFIX}"))]


def recipe_names() -> list[str]:
    """Names of the packaged recipes, sorted."""
    return [p.name[: -len(SUFFIX)] for p in sorted(_folder().glob(f"*{SUFFIX}"))]


def packaged_recipe(name: str) -> Path:
    """Path of the packaged recipe ``name`` (``"demo"`` or ``"demo.yaml"``).

    Raises:
        MissingFileError: no such recipe; the message lists the packaged names and near misses.
    """
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    path = _folder() / f"{stem}{SUFFIX}"
    if os.sep in stem or "/" in stem or not path.is_file():
        names = recipe_names()
        raise MissingFileError(f"no packaged recipe named {name!r}.{did_you_mean(stem, names)} "
                                f"Packaged recipes: {', '.join(names)} (`omnireid recipes`)")
    return path


def resolve_recipe(path_or_name: str | os.PathLike) -> Path:
    """An existing file path as it is, else the packaged recipe of that name.

    Raises:
        MissingFileError: neither a file nor a packaged recipe (the message says both).
    """
    path = Path(path_or_name)
    if path.is_file():
        return path
    text = str(path_or_name)
    looks_like_name = os.sep not in text and "/" not in text
    if looks_like_name:
        try:
            return packaged_recipe(text)
        except MissingFileError as exc:
            raise MissingFileError(f"config file not found: {text}, and {exc}") from None
    raise MissingFileError(f"config file not found: {path} (packaged recipes are named "
                            f"without a folder, e.g. `-c demo`; see `omnireid recipes`)")


def recipe_text(name: str) -> str:
    """The YAML text of the packaged recipe ``name``, comments included."""
    return packaged_recipe(name).read_text(encoding="utf-8")


__all__ = ["Recipe", "list_recipes", "packaged_recipe", "recipe_names", "recipe_text",
           "resolve_recipe"]
