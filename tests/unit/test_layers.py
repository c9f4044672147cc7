"""The package layout holds: no import cycles, no module importing a layer above its own, and
the pure core never touching sockets, files of other processes, threads or the command line.

Layers, lowest first (docs/architecture.md draws them):
    0 core            plain data and pure helpers
    1 trust, readiness    the envelope, keys, verification; the verdict and what was agreed
    2 collectors, delivery   what the node watches; spool, session, publisher
    3 config          the root config model, made of the capabilities' sections
    4 daemon, fleet   the agent's wiring; the consumer side (subscription, fleet state)
    5 web             the board and its server
    6 cli, configdoc  one module per command; the config reference (documents every command's config)
A module may import its own package and any lower layer; packages on one layer stay apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {
    "agent": 0, "agent.core": 0,
    "agent.trust": 1, "agent.readiness": 1,
    "agent.collectors": 2, "agent.delivery": 2,
    "agent.config": 3,
    "agent.daemon": 4, "agent.fleet": 4,
    "agent.web": 5,
    "agent.cli": 6, "agent.configdoc": 6,
}
PURE = ("agent.core.reading", "agent.core.schedule", "agent.core.settings", "agent.trust.envelope",
        "agent.trust.bridge", "agent.trust.canonical", "agent.readiness.model", "agent.readiness.policy",
        "agent.readiness.maintenance", "agent.collectors.modbus.codec", "agent.collectors.modbus.planner",
        "agent.collectors.modbus.frames", "agent.fleet.bodies", "agent.fleet.state", "agent.fleet.review",
        "agent.fleet.report", "agent.fleet.register", "agent.web.auth.ratelimit", "agent.web.auth.proxy",
        "agent.web.auth.headers", "agent.web.auth.exposure", "agent.web.auth.rules")
IO_AND_SHELL = ("socket", "sqlite3", "subprocess", "threading", "asyncio", "paho", "pymodbus", "psutil", "http",
                "urllib.request", "shutil", "agent.cli", "agent.daemon", "agent.delivery", "agent.fleet", "agent.web")


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / "agent").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = modules()


def package_of(module: str) -> str:
    """The layered unit a module belongs to: the longest LAYERS key that is a prefix of it."""
    return max((key for key in LAYERS if module == key or module.startswith(key + ".")), key=len)


def imports(module: str) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for each import in `module`, TYPE_CHECKING blocks left out."""
    tree = ast.parse(MODULES[module].read_text())
    found: list[tuple[str, bool]] = []
    is_package = MODULES[module].name == "__init__.py"

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".")[: len(module.split(".")) - child.level + is_package]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    candidate = f"{base}.{alias.name}"
                    found.append((candidate if candidate in MODULES else base, top))
            visit(child, top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))

    visit(tree, True)
    return found


def test_no_module_imports_a_layer_above_its_own_or_a_neighbour_package() -> None:
    wrong = []
    for module in MODULES:
        own = package_of(module)
        for target, _ in imports(module):
            if not target.startswith("agent"):
                continue
            theirs = package_of(target)
            if theirs != own and not (LAYERS[theirs] < LAYERS[own] or theirs == "agent"):
                wrong.append(f"{module} (layer {LAYERS[own]}) imports {target} (layer {LAYERS[theirs]})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_at_module_level() -> None:
    graph = {m: {t for t, top in imports(m) if top and t in MODULES and t != m} for m in MODULES}
    # Tarjan's strongly connected components: any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
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
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            connect(node)
    assert not cycles, cycles


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_io_and_no_shell(module: str) -> None:
    bad = [t for t, _ in imports(module)  # another pure module is fine wherever it lives
           if t not in PURE and any(t == f or t.startswith(f + ".") for f in IO_AND_SHELL)]
    assert not bad, f"{module} imports {bad}"


def test_every_module_has_a_layer() -> None:
    assert all(package_of(m) for m in MODULES)


def test_the_checks_catch_what_they_guard_against(tmp_path: Path) -> None:
    """The rule itself: a delivery module importing the daemon is refused, a core one importing it is too."""
    assert LAYERS[package_of("agent.delivery.spool")] < LAYERS[package_of("agent.daemon.service")]
    assert package_of("agent.collectors.modbus.codec") == "agent.collectors"
    source = "import socket\nfrom agent.daemon import service\ndef f():\n    import paho\n"
    fake = tmp_path / "fake.py"
    fake.write_text(source)
    MODULES["agent.core.fake"] = fake
    try:
        found = imports("agent.core.fake")
    finally:
        del MODULES["agent.core.fake"]
    assert found == [("socket", True), ("agent.daemon.service", True), ("paho", False)]
