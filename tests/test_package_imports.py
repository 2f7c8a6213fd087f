"""The package's import graph: no cycles, lower layers never import upper ones, and imports sit
at module level (except optional extras and a few deferred imports that say why).

The graph is read from the source with ``ast`` (every ``import`` statement, at module level and
inside functions), so it sees the imports that a function makes only when it runs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "omnireid"

#: Layers that sit below the others: they may not import any module of UPPER.
LOWER = ("omnireid.data", "omnireid.models", "omnireid.evaluation")
UPPER = ("omnireid.engine", "omnireid.inference", "omnireid.cli")

#: Optional extras (``omnireid.extras.require``) and platform modules, imported where used so
#: that ``import omnireid`` works without them.
OPTIONAL = ("onnx", "onnxruntime", "openvino", "nncf", "faiss", "matplotlib", "h5py", "scipy",
            "cv2", "torch.utils.tensorboard", "fcntl")

#: A function-level import outside the CLI that is not an optional extra must carry this comment
#: (on its line or in the three lines above) saying why it is deferred.
DEFERRED_MARK = "deferred import:"

#: Modules whose function-level imports are still to move in the same rework (evaluation path,
#: training loop). The test fails when a listed module no longer has any, so the list shrinks.
NOT_YET_MOVED: set[str] = set()


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (an omnireid module, or the external name)
    line: int
    in_function: bool
    deferred_comment: bool


def module_files(root: Path = SRC) -> dict[str, Path]:
    """``omnireid.x.y`` -> its file (packages map to their ``__init__.py``)."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The longest omnireid module that ``name`` starts with (an attribute import such as
    ``from omnireid.data import Sample`` resolves to the package ``omnireid.data``)."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def read_imports(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text, str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                window = " ".join(lines[max(child.lineno - 4, 0):child.lineno])
                for target in _targets(child, package, modules):
                    found.append(Import(module, target, child.lineno, in_function,
                                        DEFERRED_MARK in window))
            visit(child, inside)

    visit(tree, False)
    return found


def _targets(node: ast.Import | ast.ImportFrom, package: str, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = package.split(".")
            base = base[:len(base) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        names = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin
                 for alias in node.names]
    return [_resolve(n, modules) if n.split(".")[0] == PACKAGE else n for n in names]


def import_graph(root: Path = SRC) -> tuple[dict[str, set[str]], list[Import]]:
    """Edges between omnireid modules, and every import statement found."""
    modules = module_files(root)
    imports = [imp for name, path in modules.items() for imp in read_imports(name, path, modules)]
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for imp in imports:
        if imp.target in modules and imp.target != imp.source:
            edges[imp.source].add(imp.target)
    return edges, imports


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    return components


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_graph_is_read(graph):
    """The reader finds the imports it should (a guard against a reader that finds nothing)."""
    edges, imports = graph
    assert "omnireid.evaluation.distances" in edges["omnireid.evaluation.rerank"]
    assert "omnireid.data.transforms" in edges["omnireid.inference.preprocess"]
    assert any(i.in_function and i.target == "onnx" for i in imports)
    assert len(edges) > 80


def test_no_import_cycles(graph):
    edges, _ = graph
    cycles = find_cycles(edges)
    detail = "; ".join(
        " <-> ".join(c) + " (" + ", ".join(f"{a} -> {b}" for a in c for b in sorted(edges[a]) if b in c) + ")"
        for c in cycles)
    assert not cycles, f"import cycles: {detail}"


def test_lower_layers_do_not_import_upper_ones(graph):
    _, imports = graph
    bad = [f"{i.source}:{i.line} imports {i.target}" for i in imports
           if _in(i.source, LOWER) and _in(i.target, UPPER)]
    assert not bad, "a lower layer imports an upper one: " + "; ".join(bad)


def test_function_level_imports_are_extras_or_say_why(graph):
    """Outside the CLI, an import inside a function is an optional extra or says why it is
    deferred. (CLI command modules import the library inside ``run()`` so that ``omnireid
    --help`` and a usage error do not import torch; test_cli_parser_stays_light holds that.)"""
    _, imports = graph
    bad = [f"{i.source}:{i.line} {i.target}" for i in imports
           if i.in_function and not _in(i.source, ("omnireid.cli",))
           and i.source not in NOT_YET_MOVED
           and not _in(i.target, OPTIONAL) and not i.deferred_comment]
    assert not bad, ("function-level imports to move to module level (or mark with "
                     f"'# {DEFERRED_MARK} <why>'): " + "; ".join(bad))
    sources = {i.source for i in imports if i.in_function and not _in(i.target, OPTIONAL)}
    stale = sorted(NOT_YET_MOVED - sources)
    assert not stale, f"no function-level imports left in {stale}: remove them from NOT_YET_MOVED"


def test_cli_parser_stays_light():
    """Building the whole ``omnireid`` parser imports neither torch, nor tqdm (which brings
    asyncio), nor an optional extra: ``omnireid --help`` stays as fast as Python starts."""
    code = ("import sys, omnireid.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('torch', 'torchvision', 'tqdm', 'faiss', 'onnx', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
