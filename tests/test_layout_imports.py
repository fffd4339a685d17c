"""The walls of the house, read from the source with `ast` (nothing is imported): no import
cycle among charnext's modules, lazy imports inside functions included; the core rooms import
neither Rich nor Typer, nor the rooms that do; the rooms stand in layers (no cycle between
subpackages); and at most eight modules stand at the package's top."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import charnext

PACKAGE = Path(charnext.__file__).parent
UI_ROOMS = ("rendering", "cli")  # the only rooms that may import rich or typer
UI_LIBRARIES = ("rich", "typer")
FRONT_DOOR = {"__init__", "__main__", "api", "errors", "config", "events", "results", "version"}


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module under `root`, by dotted name (`charnext.storage.checkpoint`; a package by its
    own name, for its `__init__.py`)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _type_checking(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` blocks are never run, so their imports are no edge."""
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _walk(tree: ast.AST):
    """Every node of the tree, anywhere (function bodies too), except under TYPE_CHECKING."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node) if not _type_checking(child))


def imports_of(name: str, path: Path, modules: set[str]) -> tuple[set[str], set[str]]:
    """(the package's modules that `name` imports, the outside top-level packages it imports).
    `from a import b` names module `a.b` when that is a module, else `a`; a string that is exactly
    a module's name (as `importlib.import_module` takes it) counts as an import of that module."""
    is_package = path.name == "__init__.py"
    inside, outside = set(), set()

    def add(target: str) -> None:
        while target and target not in modules and "." in target:
            target = target.rsplit(".", 1)[0]  # `charnext.a.b.Name` -> the module `charnext.a.b`
        if target in modules:
            inside.add(target)

    for node in _walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                outside.add(alias.name.split(".")[0])
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                parts = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join(parts + ([base] if base else []))
            outside.add(base.split(".")[0])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(full if full in modules else base)
        elif isinstance(node, ast.Constant) and node.value in modules and "." in str(node.value):
            add(node.value)
    inside.discard(name)
    return inside, outside


def import_graph(root: Path, package: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> the package's modules it imports, module -> outside packages it imports)."""
    names = module_names(root, package)
    graph, outside = {}, {}
    for name, path in names.items():
        graph[name], outside[name] = imports_of(name, path, set(names))
    return graph, outside


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def room_of(module: str, package: str) -> str:
    """The subpackage a module lives in, or the module itself at the package's top."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else package


def is_ui(module: str, package: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and (parts[1] in UI_ROOMS or parts[1] == "__main__")


def ui_breaches(graph: dict[str, set[str]], outside: dict[str, set[str]], package: str) -> list[str]:
    """Core modules that import Rich or Typer, or a UI room's module (which would bring them in)."""
    breaches = []
    for module in sorted(graph):
        if is_ui(module, package):
            continue
        for lib in sorted(outside[module] & set(UI_LIBRARIES)):
            breaches.append(f"{module} imports {lib}")
        for target in sorted(t for t in graph[module] if is_ui(t, package)):
            breaches.append(f"{module} imports {target}")
    return breaches


def room_graph(graph: dict[str, set[str]], package: str) -> dict[str, set[str]]:
    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        room = room_of(module, package)
        rooms.setdefault(room, set()).update(room_of(t, package) for t in targets)
        rooms[room].discard(room)
    return rooms


def test_no_import_cycle_among_charnext_modules():
    graph, _ = import_graph(PACKAGE, "charnext")
    assert len(graph) > 30  # the whole package was read
    assert cycles(graph) == []


def test_core_rooms_import_neither_rich_nor_typer():
    graph, outside = import_graph(PACKAGE, "charnext")
    assert ui_breaches(graph, outside, "charnext") == []
    assert "rich" in outside["charnext.rendering.widgets"]  # the check sees what the UI imports


def test_subpackages_stand_in_layers():
    """No cycle between rooms either: a subpackage never imports one that imports it back."""
    graph, _ = import_graph(PACKAGE, "charnext")
    assert cycles(room_graph(graph, "charnext")) == []


def test_the_top_holds_only_the_front_door():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= FRONT_DOOR and len(top) <= 8, sorted(top - FRONT_DOOR)
    rooms = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert not rooms & {"train", "predict", "evaluate", "generate", "load"}


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, source in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(source)
    return root


def test_the_checks_find_a_lazy_cycle_and_rich_in_the_core(tmp_path):
    """The checks above can fail: a cycle closed by an import inside a function, one closed by
    a relative import, and Rich imported lazily from a core room, are all found."""
    root = _package(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/a.py": "from pkg.core import b\n",
            "core/b.py": "def f():\n    from pkg.core.a import thing\n",
            "core/c.py": "def show():\n    import rich.table\n    from pkg.rendering import view\n",
            "core/d.py": "from . import e\n",
            "core/e.py": "from .d import x\n",
            "core/f.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.core import a\n",
            "rendering/__init__.py": "",
            "rendering/view.py": "import typer\nfrom pkg.core import c\n",
        },
    )
    graph, outside = import_graph(root, "pkg")
    assert cycles(graph) == [
        ["pkg.core.a", "pkg.core.b"],
        ["pkg.core.c", "pkg.rendering.view"],
        ["pkg.core.d", "pkg.core.e"],
    ]
    assert ui_breaches(graph, outside, "pkg") == [
        "pkg.core.c imports rich",
        "pkg.core.c imports pkg.rendering.view",
    ]
    assert graph["pkg.core.f"] == set()  # TYPE_CHECKING imports are never run
    assert cycles(room_graph(graph, "pkg")) == [["pkg.core", "pkg.rendering"]]


def test_a_string_that_names_a_module_is_an_import(tmp_path):
    """`importlib.import_module("pkg.b")` is a lazy import like any other."""
    root = _package(
        tmp_path,
        {"a.py": "import importlib\ndef f():\n    return importlib.import_module('pkg.b')\n",
         "b.py": "from pkg import a\n"},
    )  # fmt: skip
    graph, _ = import_graph(root, "pkg")
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_exactly_one_module_draws_the_next_character():
    """charnext.inference.sampling draws; everything else (generation, previews, the report,
    play) calls it. No other module makes a random stream for characters (PCG32's, numpy's or
    torch's) or draws one."""
    drawing = {"multinomial", "default_rng", "choose", "choice", "Pcg32", "Pcg32Rows"}
    found = {}
    for name, path in module_names(PACKAGE, "charnext").items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                called = (
                    node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                )
                if called in drawing:
                    found.setdefault(name, set()).add(called)
    assert found == {"charnext.inference.sampling": {"choose", "Pcg32", "Pcg32Rows"}}


def test_the_command_line_goes_through_the_api_only():
    """cli/ reaches the core through charnext.api (and the front door's config, errors and
    events); what it shows, through rendering/."""
    graph, _ = import_graph(PACKAGE, "charnext")
    allowed = {
        "charnext",
        "charnext.api",
        "charnext.config",
        "charnext.errors",
        "charnext.events",
        "charnext.version",
    }
    reached = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("charnext.cli")
        for target in targets
        if target not in allowed and not target.startswith(("charnext.cli", "charnext.rendering"))
    }
    assert reached == set()


def test_no_function_is_longer_than_sixty_lines():
    """A function reads in one sitting: from its `def` to its last line, at most 60 lines."""
    long = []
    for name, path in module_names(PACKAGE, "charnext").items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert long == []


def view_breaches(root: Path) -> list[str]:
    """Places in a rendering room where a view writes on its own: a bare `print(...)`, a write to
    `sys.stdout`/`sys.stderr`, or a Console made anywhere but the console module. A view writes
    through the console it is handed, so that the streams, colour and width are decided once."""
    found = []
    for path in sorted(root.glob("*.py")):
        if path.name == "console.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("print", "Console")
            ):
                found.append(f"{path.name}:{node.lineno} {node.func.id}(...)")
            if isinstance(node, ast.Attribute) and ast.unparse(node) in ("sys.stdout", "sys.stderr"):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_views_write_only_through_the_console():
    assert view_breaches(PACKAGE / "rendering") == []


def test_the_view_check_finds_a_view_that_prints(tmp_path):
    (tmp_path / "console.py").write_text("from rich.console import Console\nc = Console()\n")
    (tmp_path / "a_view.py").write_text("import sys\ndef show(x):\n    print(x)\n    sys.stdout.write(x)\n")
    assert view_breaches(tmp_path) == ["a_view.py:3 print(...)", "a_view.py:4 sys.stdout"]


def test_no_view_imports_storage():
    """A view shows what the API gives it; reading and checking checkpoints is storage's job."""
    graph, _ = import_graph(PACKAGE, "charnext")
    reach = {m: sorted(t for t in targets if t.startswith("charnext.storage"))
             for m, targets in graph.items() if m.startswith("charnext.rendering")}  # fmt: skip
    assert {m: t for m, t in reach.items() if t} == {}
    assert "charnext.rendering.widgets" in reach  # the check sees the views


def test_no_module_outside_training_is_over_400_lines():
    """A module reads in a sitting too; training/ is being cut down by its own issue."""
    long = {
        name: n
        for name, path in module_names(PACKAGE, "charnext").items()
        if ".training" not in name and (n := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}


def test_the_server_reaches_the_models_only_through_what_the_api_hands_it():
    """serve/ imports the front door's records (config, errors, results) and Starlette/uvicorn,
    never a core room: each model comes to it from charnext.api.serve_app (its vocabulary and
    scheduler). Only the API, and nothing below it, opens serve/."""
    graph, outside = import_graph(PACKAGE, "charnext")
    allowed = {"charnext.config", "charnext.errors", "charnext.results", "charnext.version"}
    reached = {(m, t) for m, ts in graph.items() if m.startswith("charnext.serve") for t in ts
               if t not in allowed and not t.startswith("charnext.serve")}  # fmt: skip
    assert reached == set()
    libraries = set().union(*(outside[m] for m in graph if m.startswith("charnext.serve")))
    assert libraries - {"starlette", "uvicorn", "__future__", "charnext"} <= set(sys.stdlib_module_names)
    openers = {m for m, ts in graph.items() if any(t.startswith("charnext.serve") for t in ts)}
    assert {m for m in openers if not m.startswith("charnext.serve")} == {"charnext.api"}
