"""The house rules of `src/faco` (docs/architecture.md "Import rules"), read from the code's own imports.

Every `import` counts, also those inside functions: a lazy import hides a dependency from the import
time, not from the design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "faco"

#: Modules allowed past the size rules (functions <= 60 lines, modules <= 400 lines), and why.
SIZE_EXCEPTIONS: dict[str, str] = {
    "faco.config": "the config schema: one pydantic model per section, read top to bottom as the reference",
    "faco.cli": "one Typer command per stage and tool; each command only parses and calls the library",
}
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
#: The packages a config may not import: validation goes through `faco.registry`.
DOMAIN = ("faco.sources", "faco.generation", "faco.evaluation", "faco.judging", "faco.training",
          "faco.stages", "faco.analysis", "faco.lineage")


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str) -> Iterator[str]:
    """The faco modules `module` imports (a `from package import module` names the module)."""
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "faco":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield full if full in MODULES else node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "faco")


GRAPH = {m: sorted({i for i in _imports(m) if i in MODULES and i != m}) for m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_back() -> None:
    assert _cycles() == []


def test_stages_are_siblings_only_study_calls_others() -> None:
    crossing = [(m, i) for m, deps in GRAPH.items() for i in deps
                if m.startswith("faco.stages.") and i.startswith("faco.stages.") and m != "faco.stages.study"]
    assert crossing == []


def test_training_does_not_call_back_into_the_stages() -> None:
    assert [(m, i) for m, deps in GRAPH.items() for i in deps
            if m.startswith("faco.training") and i.startswith("faco.stages")] == []


def test_config_loads_no_domain_package() -> None:
    assert [i for i in GRAPH["faco.config"] if i.startswith(DOMAIN)] == []


def _too_long() -> Iterator[tuple[str, int]]:
    for module, path in MODULES.items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            yield module, len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    yield f"{module}.{node.name}", length


@pytest.mark.parametrize("kind", ["new", "stale"])
def test_size_rules_hold_or_are_documented(kind: str) -> None:
    """A new long function or module fails; so does an exception that is no longer needed."""
    long = dict(_too_long())
    if kind == "new":
        assert {k: v for k, v in long.items() if k not in SIZE_EXCEPTIONS} == {}
    else:
        assert [k for k in SIZE_EXCEPTIONS if k not in long] == []
