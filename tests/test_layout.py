"""The package layout: imports go downhill only (no circles), and the package root stays small."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "datakit"


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the datakit modules it imports, anywhere in its file (functions included),
    except under ``if TYPE_CHECKING:``."""
    def known(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                node.body = []  # type-only imports draw no edge
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                # `from pkg import sub` imports the submodule; `from mod import name` the module
                targets = [known(f"{base}.{a.name}") or known(base) for a in node.names]
            edges |= {known(t) for t in targets if t.startswith("datakit")} - {"", mod}
        graph[mod] = edges
    return _without_type_checking(graph, modules)


def _without_type_checking(graph, modules):
    for mod, path in modules.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                for sub in ast.walk(node):
                    if isinstance(sub, ast.ImportFrom) and sub.module and sub.module in graph[mod]:
                        if not _imported_elsewhere(tree, sub.module, node):
                            graph[mod].discard(sub.module)
    return graph


def _imported_elsewhere(tree, module, guard) -> bool:
    guarded = {id(n) for n in ast.walk(guard)}
    return any(isinstance(n, ast.ImportFrom) and n.module == module and id(n) not in guarded
               for n in ast.walk(tree))


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_imports_go_downhill_only():
    graph = import_graph(module_names())
    assert circles(graph) == []


def test_the_circle_finder_finds_a_planted_circle():
    graph = import_graph(module_names())
    graph["datakit.errors"].add("datakit.manifest.model")  # errors importing the manifest: uphill
    assert ["datakit.errors", "datakit.manifest.model"] in circles(graph)


def test_the_package_root_holds_only_the_public_api_and_whole_stages():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert root == ["__init__.py", "__main__.py", "demo.py", "errors.py", "label_issues.py"]


def test_the_public_api_is_exported_from_the_package():
    import datakit
    for name in ("ingest", "compose", "train", "audit_run", "run_study", "load_study",
                 "read_manifest", "register_check", "DatakitError", "ManifestError"):
        assert callable(getattr(datakit, name)), name
    assert set(datakit.__all__) >= {"ingest", "compose", "train", "audit_run", "run_study"}


def test_every_command_has_its_python_function_in_the_root_and_the_docs():
    import re
    import datakit
    from datakit.cli import main
    section = (PACKAGE.parent / "docs" / "cli.md").read_text().split("## The same in Python", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = re.findall(r"^\| `datakit ([a-z-]+)[^`]*` \| (.+) \|$", section, flags=re.M)
    assert sorted(cmd for cmd, _ in rows) == sorted(main.commands)
    for cmd, python in rows:
        names = re.findall(r"datakit\.([A-Za-z_]+)\(", python)
        assert names, f"no function named for `datakit {cmd}`"
        for name in names:
            assert name in datakit.__all__ and callable(getattr(datakit, name)), (cmd, name)
    assert {"DemoConfig", "LabelIssuesConfig", "AuditConfig", "ComposeConfig", "TrainConfig"} <= set(dir(datakit))
