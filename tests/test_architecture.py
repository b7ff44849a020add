"""The arrows of the design, enforced: a layer imports only the layers below it, and no
module imports itself back through others.

Every module of `src/fabriek` is read as source (nothing is imported), and every import in
it counts, also one inside a function or under `TYPE_CHECKING`: a lazy import is still an
arrow. The table is the design's "where code lives", with the places where the code is right
and the design's words are not said beside the row.

Sizes are enforced the same way: no module over `MAX_MODULE_LINES`, no function or method
over `MAX_FUNCTION_LINES`, but for the modules named in `OVERSIZED`, each with its reason.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "fabriek"

# What each layer may import of fabriek, besides itself. An entry is a layer or a dotted
# module inside one ("api.context"): that module and those below it.
ALLOWED: dict[str, frozenset[str]] = {
    # Typed values and pure rules.
    "domain": frozenset(),
    # Configuration read from the environment and the command line (pydantic-settings); it
    # holds no rules, so it sits beside `domain`, but only the server side reads it: the
    # client (`cli`, `sdk`) has its own configuration.
    "settings": frozenset(),
    "scheduler": frozenset({"domain"}),
    "engines": frozenset({"domain"}),
    "store": frozenset({"domain"}),
    # ... and the model server's command-line builder (pure), for an endpoint's replicas.
    "services": frozenset(
        {"domain", "scheduler", "engines", "store", "settings", "model_server.commands"}
    ),
    "api": frozenset({"services", "domain", "settings"}),
    # The portal is served by the API's application: it shares its request context (the
    # session and the signed-in caller, `api.context`) and its error-to-status table
    # (`api.problems`), and calls the services in-process; never the store or the engines.
    "web": frozenset({"services", "domain", "settings", "api.context", "api.problems"}),
    # The server's entry points (serve, migrate, load data, simulate) are sub-commands of
    # the `fabriek` command: they print with the CLI's output helpers, and nothing else of it.
    "server": frozenset(
        {"domain", "settings", "scheduler", "engines", "store", "services", "api", "web"}
        | {"cli.output"}
    ),
    # Thin commands over the SDK; domain values (drafts, states) are shared with the server.
    "cli": frozenset({"sdk", "domain"}),
    "sdk": frozenset({"domain"}),
    # `fabriek site-agent`, run at a site: it pulls the site's desired state through the
    # SDK and applies it with the site's own tools (useradd, sacctmgr); it is a client of
    # the API like the CLI, and never touches the store.
    "site_agent": frozenset({"sdk", "domain", "cli.output"}),
    # The `fabriek` command: the client's commands, one-line errors. The server's commands
    # are named by module path and imported only when run (see `cli.catalogue`).
    "main": frozenset({"cli", "sdk", "domain"}),
    # The model server an endpoint's replica runs (`python -m fabriek.model_server`): a
    # program of its own on the job's host, standing on nothing else of Fabriek.
    "model_server": frozenset(),
}
# Importable from every layer: the package itself (its version) and `config` (data files).
ANYWHERE = frozenset({"fabriek", "config"})
# Imports that break the table today, each with its reason; to be emptied, never grown.
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()

# A module is read in one sitting and a function on one screen: past these, split them.
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# Modules (by path under src/fabriek) allowed to break those limits for now, each with its
# reason; to be emptied, never grown. An entry whose module fits again must go.
OVERSIZED: dict[str, str] = {}
# Generated once per schema change and never edited: their size is not the code's.
UNSIZED = ("store/migrations/",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    """The layer of a module: the folder it is in, or the root module it is."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "fabriek"


def imports(module: str, path: Path, lazy: bool = True) -> Iterator[tuple[str, int]]:
    """The fabriek modules (or names in them) `module` imports, with the line; with `lazy`
    False, only those run when the module is imported (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nodes = ast.walk(tree) if lazy else _module_level(tree.body)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                yield f"{source}.{alias.name}", node.lineno


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run at import: the body, into if/try blocks, but not into functions or
    classes, nor under `if TYPE_CHECKING:`."""
    for stmt in body:
        if isinstance(stmt, ast.If):
            if not (isinstance(stmt.test, ast.Name) and stmt.test.id == "TYPE_CHECKING"):
                yield from _module_level(stmt.body)
            yield from _module_level(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, stmt.orelse, stmt.finalbody):
                yield from _module_level(block)
            for handler in stmt.handlers:
                yield from _module_level(handler.body)
        else:
            yield stmt


def fabriek_target(name: str, known: dict[str, Path]) -> str | None:
    """The fabriek module an imported dotted name is: the module itself, or the module a
    name is imported from. None for anything outside fabriek."""
    if name != "fabriek" and not name.startswith("fabriek."):
        return None
    while name not in known:
        name = name.rpartition(".")[0]
    return name


def allows(importer: str, target: str) -> bool:
    """Whether a module of layer `importer` may import module `target`."""
    target_layer = layer(target)
    if target_layer == importer or target_layer in ANYWHERE:
        return True
    inner = target.removeprefix("fabriek.")
    return any(inner == a or inner.startswith(a + ".") for a in ALLOWED[importer])


def test_every_layer_is_in_the_table() -> None:
    found = {layer(m) for m in modules()}
    assert found - ALLOWED.keys() - ANYWHERE == set(), "a new folder needs a row in ALLOWED"
    assert {"domain", "services", "api", "web", "cli", "sdk", "server"} <= found


def test_a_layer_imports_only_the_layers_below_it() -> None:
    known = modules()
    wrong = []
    for module, path in known.items():
        for name, line in imports(module, path):
            target = fabriek_target(name, known)
            if target is None or allows(layer(module), target):
                continue
            if (module, target) not in KNOWN_EXCEPTIONS:
                wrong.append(
                    f"{module}:{line} imports {target} ({layer(module)} -> {layer(target)})"
                )
    assert wrong == []


def test_the_api_and_the_portal_reach_the_store_and_engines_only_through_services() -> None:
    # Said on its own, as the design names it; the table above already implies it.
    for importer in ("api", "web"):
        assert not ALLOWED[importer] & {"store", "engines"}
        assert not any(a.startswith(("store.", "engines.")) for a in ALLOWED[importer])


def test_no_module_imports_itself_back() -> None:
    known = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in known.items():
        for name, _line in imports(module, path, lazy=False):
            target = fabriek_target(name, known)
            if target is not None and target != module:
                graph[module].add(target)
    cycles = [sorted(c) for c in strongly_connected(known, graph) if len(c) > 1]
    assert cycles == []


def strongly_connected(nodes: dict[str, Path], graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, without recursion (the graph is deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    found.append(component)
    return found


def test_the_check_sees_a_wrong_arrow() -> None:
    # The checker itself: an upward import is refused, a downward one allowed.
    assert not allows("domain", "fabriek.services.jobs")
    assert not allows("api", "fabriek.store.db")
    assert not allows("web", "fabriek.engines.base")
    assert not allows("web", "fabriek.api.routers.jobs")
    assert not allows("cli", "fabriek.services.jobs")
    assert not allows("sdk", "fabriek.cli.output")
    assert allows("web", "fabriek.api.context")
    assert allows("services", "fabriek.store.tables")
    assert allows("server", "fabriek.cli.output")
    assert not allows("server", "fabriek.cli.app")
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    nodes = dict.fromkeys(graph, Path())
    assert [
        sorted(c) for c in strongly_connected(nodes, defaultdict(set, graph)) if len(c) > 1
    ] == [["a", "b", "c"]]


def oversized(path: Path) -> list[str]:
    """What is too long in one module: itself, and each function or method (nested ones
    too), measured from its `def` line to its last line."""
    text = path.read_text(encoding="utf-8")
    found = []
    if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
        found.append(f"{lines} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(
                    f"{node.name} (line {node.lineno}) has {length} lines "
                    f"(at most {MAX_FUNCTION_LINES})"
                )
    return found


def test_no_module_or_function_is_oversized() -> None:
    sized = {
        p.relative_to(PACKAGE).as_posix(): p
        for p in sorted(PACKAGE.rglob("*.py"))
        if not p.relative_to(PACKAGE).as_posix().startswith(UNSIZED)
    }
    wrong = [
        f"{name}: {what}"
        for name, path in sized.items()
        if name not in OVERSIZED
        for what in oversized(path)
    ]
    assert not wrong, "split these, or (for a while) name them in OVERSIZED with a reason:\n" + (
        "\n".join(wrong)
    )
    stale = [name for name in OVERSIZED if name not in sized or not oversized(sized[name])]
    assert not stale, f"these fit now: take them out of OVERSIZED: {', '.join(stale)}"
    assert all(OVERSIZED.values()), "every entry of OVERSIZED says why"


def test_the_size_check_sees_a_long_function(tmp_path: Path) -> None:
    # The checker itself: a method one line over the limit is named, a function at it is not.
    def body(indent: str, lines: int) -> str:
        return "".join(f"{indent}x = {i}\n" for i in range(lines - 2)) + f"{indent}return x\n"

    module = tmp_path / "m.py"
    fits = "def fits():\n" + body("    ", MAX_FUNCTION_LINES)
    over = "class C:\n    def over(self):\n" + body("        ", MAX_FUNCTION_LINES + 1)
    module.write_text(fits + "\n\n" + over)
    assert [w.split(" ")[0] for w in oversized(module)] == ["over"]
    module.write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert oversized(module) == [f"{MAX_MODULE_LINES + 1} lines (at most {MAX_MODULE_LINES})"]
