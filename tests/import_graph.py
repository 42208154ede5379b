"""The `tuneval.*` import graph of the source tree, read with `ast` (nothing is imported or executed).

Each edge says whether the import runs when the importing module loads (`module_level`) or only when a function
runs (a lazy import inside a def). Imports under `if TYPE_CHECKING:` never run and are left out. Importing
`tuneval.a.b` also runs the package `tuneval.a` (its `__init__.py`), so that is an edge too; the top package
`tuneval` itself is left out (see `TOP_PACKAGE`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
TOP_PACKAGE = "tuneval"


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, e.g. tuneval.stage
    target: str  # imported module, e.g. tuneval.config
    module_level: bool


def module_file(module: str, src: Path = SRC) -> Path | None:
    """`tuneval.x.y` -> src/tuneval/x/y.py or src/tuneval/x/y/__init__.py; None if neither exists."""
    base = src.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path, src: Path = SRC) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _with_parents(module: str) -> list[str]:
    """`tuneval.tasks.x` -> [tuneval.tasks, tuneval.tasks.x]: importing a submodule runs its packages first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts) + 1)]


def _imported_modules(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, src: Path) -> list[str]:
    """The existing tuneval modules (and their packages) an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative import: resolve against the importing module's package
            package = importer.split(".") if is_package else importer.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        # `from pkg import name`: name is a submodule if a file says so, else an attribute of pkg
        names = [base] + [f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}", src)]
    found = []
    for name in names:
        if name == TOP_PACKAGE or not name.startswith(f"{TOP_PACKAGE}."):
            continue
        found += [m for m in _with_parents(name) if module_file(m, src) and m not in found]
    return found


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def file_edges(path: Path, importer: str, src: Path = SRC) -> list[Edge]:
    """Every tuneval import in one file (stage scripts included), module-level or inside a function."""
    edges: list[Edge] = []
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in _imported_modules(node, importer, is_package, src):
                edges.append(Edge(importer, target, module_level=not in_function))
            return
        if _is_type_checking_block(node):  # only its `else:` branch ever runs
            children: list[ast.AST] = list(node.orelse)
        else:
            children = list(ast.iter_child_nodes(node))
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in children:
            visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), in_function=False)
    # a module inside a package runs that package's __init__ first
    edges += [Edge(importer, parent, True) for parent in _with_parents(importer)[:-1] if module_file(parent, src)]
    return edges


def import_graph(src: Path = SRC) -> list[Edge]:
    """All edges between tuneval modules under `src`."""
    edges = []
    for path in sorted((src / TOP_PACKAGE).rglob("*.py")):
        edges += file_edges(path, module_name(path, src), src)
    return [e for e in edges if e.source != e.target]


def closure(start: list[str], edges: list[Edge]) -> set[str]:
    """Every module reachable from `start` (module-level and lazy imports alike: both run during a stage)."""
    targets: dict[str, set[str]] = {}
    for edge in edges:
        targets.setdefault(edge.source, set()).add(edge.target)
    seen, todo = set(), list(start)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += targets.get(module, ())
    return seen


def cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted; [] = acyclic."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


# ------------------------------------------------------------------------------------- what a stage runs
def _top_level_functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def function_imports(module: str, names: list[str], src: Path = SRC) -> set[str] | None:
    """The modules a call of `module.<name>` for each of `names` can import: the module's own module-level imports,
    plus the lazy imports inside those functions and inside every top-level function of `module` they mention by
    name (transitively). None when a name is not a top-level function (then the whole module counts)."""
    path = module_file(module, src)
    tree = ast.parse(path.read_text(), str(path))
    functions = _top_level_functions(tree)
    if not all(name in functions for name in names):
        return None
    targets = {e.target for e in file_edges(path, module, src) if e.module_level}
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        body = list(ast.walk(functions[name]))
        local = {n.id for n in body if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        local |= {a.arg for n in body if isinstance(n, ast.arguments) for a in [*n.posonlyargs, *n.args, *n.kwonlyargs]}
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets |= set(_imported_modules(node, module, path.name == "__init__.py", src))
            elif isinstance(node, ast.Name) and node.id in functions and node.id not in local:
                todo.append(node.id)  # a call of (or reference to) another function of the module; a local
                # variable that happens to share a function's name (`train, test = ...`) is not one
    targets.discard(module)
    return targets


def script_closure(script: Path, src: Path = SRC) -> set[str]:
    """Every tuneval module a script (e.g. stages/train.py) can import while it runs.

    The full closure (module-level and lazy imports) of what the script imports, with one refinement at the first
    hop: where the script takes only functions from a module (`from tuneval.report.publish import publish`), that module
    contributes its module-level imports and the lazy imports of those functions, not those of its other
    functions. Without it every stage would depend on every module, had one module held all stage functions
    and imports each one's modules lazily. The refinement is dropped for a module that some other reached module
    imports too (its other functions might then run).
    """
    tree = ast.parse(script.read_text(), str(script))
    edges = file_edges(script, "__main__", src)
    start = {e.target for e in edges}
    wanted: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and module_file(node.module, src):
            wanted.setdefault(node.module, []).extend(alias.name for alias in node.names)
    full = import_graph(src)
    overrides = {m: t for m, names in wanted.items() if (t := function_imports(m, names, src)) is not None}
    while True:
        graph = [e for e in full if e.source not in overrides]
        graph += [Edge(m, t, False) for m, targets in overrides.items() for t in targets]
        reached = closure(sorted(start), graph)
        reentered = {e.target for e in full if e.target in overrides and e.source in reached - set(overrides)}
        if not reentered:
            return reached
        overrides = {m: t for m, t in overrides.items() if m not in reentered}
