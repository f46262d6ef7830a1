"""The project's layers: imports run one way, and no module imports itself in a circle.

`api`/`cli` -> `services` -> `core` is the client side; `flows` -> `tasks` -> `core` is what
runs inside a goal run. The graph is read from the source (every import statement, inside
functions too), so an import hidden in a function cannot hide a cycle.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "tasks", "flows", "services", "api", "cli")
# What each package may import from the project, besides itself.
MAY_IMPORT = {
    "core": set(),
    "tasks": {"core"},
    "flows": {"core", "tasks"},
    "services": {"core"},
    "api": {"core", "services"},
    # `mission run` runs a goal in this process: it starts the flow through flows.inline.
    "cli": {"core", "services", "api", "flows"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from core import gateway` imports the module core.gateway, not just core.
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n for n in submodules if n in modules] or [node.module]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def test_every_import_runs_down_the_layers() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if (top := target.split(".")[0]) != module.split(".")[0]
        and top not in MAY_IMPORT[module.split(".")[0]]
    ]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules, or [] (depth-first search)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if not state.get(target) and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if not state.get(node) and (cycle := visit(node)):
            return cycle
    return []


def test_no_module_imports_itself_through_others() -> None:
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle_hidden_two_modules_deep() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_api_process_loads_no_task_code() -> None:
    """No Playwright, no anthropic SDK, nothing of tasks/ or flows/ in the API process."""
    probe = (
        "import json, sys, api.main; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('playwright', 'anthropic', 'tasks', 'flows'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
