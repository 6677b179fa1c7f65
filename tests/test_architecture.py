"""The house's rules, read from the code: dependencies point down (docs/ARCHITECTURE.md's layers), no cycles."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "mdl_utils"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The mdl_utils modules ``path`` imports, at module level or inside a function (``from . import x`` of a
    module x counts as x; of a name, as the module that holds it)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)] if node.level else []
            module = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
            for alias in node.names if module.startswith("mdl_utils") else ():
                name = f"{module}.{alias.name}"
                is_module = (ROOT / (name.replace(".", "/") + ".py")).exists() or (ROOT / name.replace(".", "/")).is_dir()
                found.add(name if is_module else module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mdl_utils")}
    return found - {me}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def layers() -> dict[str, int]:
    """docs/ARCHITECTURE.md's ```layers block: "<n> <words>: <module> ..." (``codes.*``: every module of codes/)."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "docs/ARCHITECTURE.md has no ```layers block"
    table = {}
    for line in block.group(1).strip().splitlines():
        number, _, modules = line.partition(":")
        for m in modules.split():
            table["mdl_utils" if m == "mdl_utils" else f"mdl_utils.{m}"] = int(number.split()[0])
    return table


def layer_of(module: str, table: dict[str, int]) -> int | None:
    return table.get(module, table.get(module.rsplit(".", 1)[0] + ".*"))


def arrows_against(edges: dict[str, set[str]], table: dict[str, int]) -> list[str]:
    """The imports from a module to a module of a higher layer."""
    return sorted(f"{m} (layer {layer_of(m, table)}) imports {t} (layer {layer_of(t, table)})"
                  for m, targets in edges.items() for t in targets if layer_of(t, table) > layer_of(m, table))


def cycles(edges: dict[str, set[str]]) -> list[str]:
    """The import cycles found by a depth-first search (each as "a -> b -> a")."""
    state, found = {}, []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    return found


def test_every_module_has_a_layer():
    table = layers()
    assert [m for m in graph() if layer_of(m, table) is None] == []


def test_dependencies_point_down_and_close_no_cycle():
    edges = graph()
    assert arrows_against(edges, layers()) == []
    assert cycles(edges) == []


def test_the_checks_catch_a_wrong_arrow_and_a_cycle():
    """The rules are not vacuous: a function-level import of the runner by the tables (the old gap_notes) and of
    the chapters by a code are found."""
    table, edges = layers(), graph()
    assert imports_of(PACKAGE / "chapters.py") >= {"mdl_utils.codes", "mdl_utils.results"}
    bad = {**edges, "mdl_utils.codes.switch": edges["mdl_utils.codes.switch"] | {"mdl_utils.chapters"},
           "mdl_utils.tables": edges["mdl_utils.tables"] | {"mdl_utils.jobs"},
           "mdl_utils.jobs": edges["mdl_utils.jobs"] | {"mdl_utils.tables"}}
    assert arrows_against(bad, table) == ["mdl_utils.codes.switch (layer 3) imports mdl_utils.chapters (layer 4)"]
    assert "mdl_utils.jobs -> mdl_utils.tables -> mdl_utils.jobs" in cycles(bad)


def test_the_runner_names_no_chapter():
    """A new code plugs into the runner through the registry's hooks (mdl_utils.codes), never an edit of it."""
    from mdl_utils import codes

    for module in ("jobs", "joblist", "runner"):
        source = (PACKAGE / f"{module}.py").read_text()
        assert [c.name for c in codes.CHAPTERS if re.search(rf"[\"']{c.name}[\"']", source)] == [], module


def test_the_architecture_pages_chapter_table_is_the_registry():
    """docs/ARCHITECTURE.md's "One name per code" table lists the registry's chapters, in order, with their
    notebooks, modules and results folders."""
    from mdl_utils import codes

    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    table = text[text.index("## One name per code"):text.index("## Layers")]
    rows = [[cell.strip(" `") for cell in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| `")]
    expected = [[f"{c.number:02d}_{c.name}", f"codes/{c.name}.py", f"results/{c.name}/"] for c in codes.CHAPTERS]
    assert [[r[0], r[1].split()[0].strip("`"), r[2]] for r in rows] == expected
