"""The shared layer's imports form layers, not circles (issue 23, "the data layer below the domain").

Every `import` of every module of `layers/common/oneai` counts, wherever it is written: at module level,
inside a function (it runs at call time, so the dependency is just as real), and under `TYPE_CHECKING`
(a type the module cannot be checked without is a dependency of its design: `Database` taking a
`Principal` ties the data layer to the token code even if Python never loads it). Importing `a.b.c` also
runs the `__init__` of the packages `a` and `a.b` unless the importer is inside them already, so those
count too. Two rules are checked on that graph:

1. no module of `oneai` is in a circle (a strongly connected component of more than one module, or a
   module importing itself);
2. the data layer sits below the domain: no module of `oneai.db` imports a module outside `oneai.db`
   that itself reaches `oneai.db` (plain types and settings, like the tier names, `conversations.models`
   or `oneai.config`, reach nothing of it and are fine);
3. the chat domain sits below the web layer (issue 25): no module of `oneai.chat` reaches `oneai.web`,
   directly or through another module, nor imports a web framework itself; it yields the bytes of its
   streams and the routes make the responses.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

from tests.conftest import REPO_ROOT

LAYER_ROOT = REPO_ROOT / "layers" / "common"
PACKAGE = "oneai"
DATA_LAYER = "oneai.db"
CHAT = "oneai.chat"
WEB_LAYER = "oneai.web"
WEB_FRAMEWORKS = ("fastapi", "starlette", "mangum")

Graph = dict[str, frozenset[str]]


def module_name(path: Path) -> str:
    parts = path.relative_to(LAYER_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_paths() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((LAYER_ROOT / PACKAGE).rglob("*.py"))}


def is_package(name: str, paths: dict[str, Path]) -> bool:
    return paths[name].name == "__init__.py"


def ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def imported_names(tree: ast.AST, name: str, package: bool) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every import statement anywhere in `tree`: (module, names taken from it), relative ones resolved."""
    here = name.split(".") if package else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(here[: len(here) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            yield base, tuple(alias.name for alias in node.names)


def direct_imports(name: str, paths: dict[str, Path]) -> frozenset[str]:
    tree = ast.parse(paths[name].read_text(encoding="utf-8"), filename=str(paths[name]))
    targets: set[str] = set()
    for base, taken in imported_names(tree, name, is_package(name, paths)):
        # `from a.b import c` imports the module a.b.c when c is one, else takes a name of a.b.
        modules = {f"{base}.{item}" if f"{base}.{item}" in paths else base for item in taken} or {base}
        for target in modules & paths.keys():
            targets.add(target)
            # Importing a.b.c runs the __init__ of a and a.b first, unless the importer is inside them.
            targets.update(parent for parent in ancestors(target) if not inside(name, parent))
    targets.discard(name)
    return frozenset(targets)


@cache
def import_graph() -> Graph:
    paths = module_paths()
    return {name: direct_imports(name, paths) for name in paths}


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def path_to_data_layer(graph: Graph, start: str) -> list[str] | None:
    """The shortest import chain from `start` to a module of `oneai.db`, or None if it reaches none."""
    # a module of the data layer (its empty package aside)
    return shortest_chain(graph, start, lambda node: node.startswith(DATA_LAYER + "."))


def shortest_chain(graph: Graph, start: str, reached: Callable[[str], bool]) -> list[str] | None:
    """The shortest import chain from `start` to a module `reached` accepts, or None if there is none."""
    previous: dict[str, str | None] = {start: None}
    queue = [start]
    for node in queue:
        if reached(node):
            chain = [node]
            while (before := previous[chain[-1]]) is not None:
                chain.append(before)
            return chain[::-1]
        for target in sorted(graph[node]):
            if target not in previous:
                previous[target] = node
                queue.append(target)
    return None


def test_the_graph_sees_imports_inside_functions_and_under_type_checking() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from oneai.auth import Principal\n"
        "def f():\n    from oneai.db import rate_limits\n"
        "from . import errors\n"
    )
    asked = list(imported_names(tree, "oneai.db.example", package=False))
    assert ("oneai.auth", ("Principal",)) in asked
    assert ("oneai.db", ("rate_limits",)) in asked
    assert ("oneai.db", ("errors",)) in asked


def test_no_module_of_oneai_is_in_an_import_circle() -> None:
    circles = strongly_connected(import_graph())
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(circle) for circle in circles)


def test_the_data_layer_imports_nothing_that_reaches_the_data_layer() -> None:
    graph = import_graph()
    offenders = []
    for name in sorted(graph):
        if not inside(name, DATA_LAYER):
            continue
        for target in sorted(graph[name]):
            if inside(target, DATA_LAYER):
                continue
            chain = path_to_data_layer(graph, target)
            if chain is not None:
                offenders.append(f"{name} imports {' -> '.join(chain)}")
    assert not offenders, "the data layer reaches up:\n" + "\n".join(offenders)


def test_the_chat_package_reaches_nothing_of_the_web_layer() -> None:
    graph = import_graph()
    chats = [name for name in sorted(graph) if inside(name, CHAT)]
    assert f"{CHAT}.entry" in chats  # the turn's entry point is among the modules checked
    offenders = []
    for name in chats:
        chain = shortest_chain(graph, name, lambda node: inside(node, WEB_LAYER))
        if chain is not None:
            offenders.append(" -> ".join(chain))
    assert not offenders, "oneai.chat reaches the web layer:\n" + "\n".join(offenders)


def test_the_chat_package_imports_no_web_framework() -> None:
    paths = module_paths()
    offenders = []
    for name in sorted(paths):
        if not inside(name, CHAT):
            continue
        tree = ast.parse(paths[name].read_text(encoding="utf-8"), filename=str(paths[name]))
        for base, _ in imported_names(tree, name, is_package(name, paths)):
            if base.split(".")[0] in WEB_FRAMEWORKS:
                offenders.append(f"{name} imports {base}")
    assert not offenders, "oneai.chat imports a web framework:\n" + "\n".join(offenders)
