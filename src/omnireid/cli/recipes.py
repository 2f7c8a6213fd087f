"""`omnireid recipes`: list the packaged recipes; `omnireid recipes show NAME` prints one."""

from __future__ import annotations

import argparse

from omnireid.cli import CLIError
from omnireid.cli.util import print_table
from omnireid.recipes import list_recipes, packaged_recipe


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "recipes", help="list the packaged recipes, or print one",
        description="Lists the recipes that ship with omnireid (usable as `omnireid train -c NAME` "
                    "and `omnireid nas -c NAME`). `omnireid recipes show NAME > my.yaml` starts a "
                    "customised copy.")
    p.add_argument("action", nargs="?", choices=["list", "show", "path"], default="list",
                   help="list (default), show NAME (print the YAML) or path NAME (print its file)")
    p.add_argument("name", nargs="?", help="recipe name for show/path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        if args.name:
            raise CLIError(f"`recipes list` takes no name; did you mean `recipes show {args.name}`?")
        recipes = list_recipes()
        print_table(["recipe", "kind", "summary"], [[r.name, r.kind, r.summary] for r in recipes])
        print("\nuse: omnireid train -c NAME   |   omnireid recipes show NAME > my.yaml")
        return 0
    if not args.name:
        raise CLIError(f"`recipes {args.action}` needs a recipe name (see `omnireid recipes`)")
    path = packaged_recipe(args.name)
    if args.action == "path":
        print(path)
    else:
        print(path.read_text(encoding="utf-8"), end="")
    return 0
