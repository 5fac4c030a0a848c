"""Which way imports point among tracker's modules (the README's architecture notes): no
circles, imports inside functions included, and the bottom layers import nothing above."""

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "tracker"


def module_name(path):
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph():
    """{module: the tracker modules it imports anywhere in its code}, migrations left out."""
    paths = {
        module_name(path): path
        for path in APP.rglob("*.py")
        if "migrations" not in path.relative_to(APP).parts
    }
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in paths:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    return graph


def reachable(graph, start):
    seen, stack = set(), [start]
    while stack:
        for target in graph[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def test_no_module_imports_itself_round_a_circle():
    graph = import_graph()
    circles = sorted(name for name in graph if name in reachable(graph, name))
    assert circles == []


def test_the_models_and_the_queue_sit_below_the_flows_and_the_tasks():
    graph = import_graph()
    assert graph["tracker.queueing"] == set()  # Celery and settings only
    below_models = reachable(graph, "tracker.models")
    assert not below_models & {"tracker.webhooks", "tracker.tasks", "tracker.monitoring"}
    assert "tracker.tasks" not in reachable(graph, "tracker.webhooks")
