"""The package's shape: the library never imports the CLI, and no module of `experiments`
imports another in a circle (the CLI modules used to: cli, cli_data, cli_features,
cli_trials and demo)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "experiments"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = sorted(_module_name(p) for p in PKG.rglob("*.py") if p.name != "__main__.py")
CLI = [m for m in MODULES if m.split(".")[-1] == "cli" or m.split(".")[-1].startswith("cli_")]
LIBRARY = [m for m in MODULES if m not in CLI and m != "experiments"]


def imports_of(module: str) -> set[str]:
    """Every experiments module that ``module`` imports anywhere (top level or inside a
    function), as the AST says."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from experiments import x` may name a module x
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {n for n in names if n in MODULES and n != module}
    return out


def test_the_lists_are_what_they_say():
    assert {"experiments.cli", "experiments.cli_data", "experiments.cli_features",
            "experiments.cli_trials", "experiments.cli_base"} <= set(CLI)
    assert {"experiments.demo", "experiments.designs", "experiments.ingest",
            "experiments.features.extract"} <= set(LIBRARY)
    assert "experiments.dataset" not in MODULES  # renamed for what it does


def test_no_library_module_imports_a_cli_module_in_its_source():
    offenders = {m: sorted(imports_of(m) & set(CLI)) for m in LIBRARY}
    assert {m: c for m, c in offenders.items() if c} == {}


def test_no_import_cycle_in_the_package():
    graph = {m: imports_of(m) for m in MODULES}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m, [m])


def test_importing_each_library_module_loads_no_cli_module():
    code = ("import importlib, sys\n"
            "bad = {}\n"
            f"for name in {LIBRARY!r}:\n"
            "    before = set(sys.modules)\n"
            "    importlib.import_module(name)\n"
            "    new = [m for m in sys.modules if m.startswith('experiments.cli')]\n"
            "    if new: bad[name] = new\n"
            "    for m in [m for m in sys.modules if m.startswith('experiments')]:\n"
            "        del sys.modules[m]\n"
            "print(bad)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "{}"
