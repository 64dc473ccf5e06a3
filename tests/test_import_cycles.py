"""No import cycles in ``reward_server``: between its modules, and between its parts.

The graph is built from the source with ``ast`` (nothing is imported). An edge ``a -> b``
is an import that runs when ``a`` is imported: any ``import`` or ``from ... import``
statement in the module body, including those under ``if``/``try``/``with`` and in class
bodies. Two kinds are left out because they never run at import time: imports inside
functions (lazy: the service uses them on purpose for heavy optional dependencies, torch
and vLLM, and for ``reward_server.create_app``), and ``if TYPE_CHECKING:`` blocks (read
by type checkers only).

Two graphs must be acyclic:

* modules: each ``.py`` file is a node (a package is its ``__init__.py``);
* parts: each module is folded into its top-level part of ``reward_server``
  (``reward_server.judge.engine`` -> ``reward_server.judge``), so ``scorers`` may use
  ``judge`` or the other way round, never both.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "reward_server"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def load_modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (path, is_package) for every module of the package."""
    return {
        module_name(path): (path, path.name == "__init__.py")
        for path in sorted((ROOT / PACKAGE).rglob("*.py"))
    }


def eager_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run at import time (module body, not function bodies)."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue  # lazy: runs when called
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the body runs for type checkers only
        else:
            stack.extend(ast.iter_child_nodes(node))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def resolve(node: ast.Import | ast.ImportFrom, here: str, is_package: bool,
            modules: dict[str, tuple[Path, bool]]) -> set[str]:
    """The package's modules an import statement loads explicitly."""
    targets: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in modules:
                targets.add(alias.name)
        return targets
    if node.level:
        base = here.split(".") if is_package else here.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    for alias in node.names:
        submodule = f"{source}.{alias.name}"
        if submodule in modules:  # from package import submodule
            targets.add(submodule)
        elif source in modules:
            targets.add(source)
    return targets


def import_graph() -> dict[str, set[str]]:
    modules = load_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in eager_imports(tree):
            graph[name] |= resolve(node, name, is_package, modules) - {name}
    return graph


def part_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def part_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    parts: dict[str, set[str]] = {}
    for module, targets in graph.items():
        node = parts.setdefault(part_of(module), set())
        node |= {part_of(t) for t in targets} - {part_of(module)}
    return parts


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or ``None`` (depth-first, three colours)."""
    colour = dict.fromkeys(graph, 0)  # 0 new, 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if colour.get(target, 2) == 1:
                return [*path[path.index(target):], target]
            if colour.get(target) == 0 and (cycle := visit(target)):
                return cycle
        path.pop()
        colour[node] = 2
        return None

    for start in sorted(graph):
        if colour[start] == 0 and (cycle := visit(start)):
            return cycle
    return None


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),  # a chain
        ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),  # a diamond is not a cycle
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),  # two modules importing each other
        ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),  # a cycle off the start
    ],
)
def test_find_cycle(edges, cycle):
    assert find_cycle(edges) == cycle


def test_resolve_reads_the_forms_of_import(tmp_path):
    """Absolute, relative, package-member and lazy imports land where they should."""
    modules = {"pkg": (tmp_path, True), "pkg.a": (tmp_path, False),
               "pkg.sub": (tmp_path, True), "pkg.sub.b": (tmp_path, False)}
    tree = ast.parse(
        "import pkg.a\nfrom pkg.sub import b\nfrom . import a\nfrom .b import thing\n"
        "from pkg.sub import helper\nimport os\n"
        "def later():\n    import pkg\n"
        "if TYPE_CHECKING:\n    import pkg\n"
    )
    found = set()
    for node in eager_imports(tree):
        found |= resolve(node, "pkg.sub.c", False, modules)
    assert found == {"pkg.a", "pkg.sub.b", "pkg.sub"}


def test_the_graph_sees_the_real_imports():
    """Guards against a vacuous graph: known edges of the service are found."""
    graph = import_graph()
    assert "reward_server.judge.engine" in graph["reward_server.judge.factory"]
    assert "reward_server.batching" in graph["reward_server.judge.engine"]
    assert "reward_server.scorers.refusal" in graph["reward_server.scorers.rules"]
    assert "reward_server.app" not in graph[PACKAGE]  # lazy, inside a function


def test_no_cycle_between_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_cycle_between_parts():
    cycle = find_cycle(part_graph(import_graph()))
    assert cycle is None, "import cycle between parts: " + " -> ".join(cycle or [])
