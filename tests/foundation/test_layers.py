"""Imports go one way: runtime <- base <- export <- methods <- journey <- cli, and no module imports
itself back through others.

The graph is read from the source with ``ast`` (imports at any depth, inside functions included, and
``"package.module:attr"`` strings, the registries' name-looked-up imports), with pyproject's
package-dir mapping: ``export/`` is ``edgefl.export``, ``runtime/`` is ``edgefl.runtime``.
"""

import ast
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # the host side supports 3.10
    import tomli as tomllib

# The layers, leftmost first; a module may import from its own layer and any layer to its left.
LAYERS = ("runtime", "base", "export", "methods", "journey", "cli")

# Module or package -> layer; the longest entry that names a module or one of its packages wins.
# Every module must be placed (the root package `edgefl` itself is base).
LAYER_OF = {
    "edgefl": "base",
    "edgefl.runtime": "runtime",
    "edgefl.errors": "base",
    "edgefl.progress": "base",
    "edgefl.data": "base",
    "edgefl.datasets": "base",
    "edgefl.models": "base",
    "edgefl.checkpoint": "base",
    "edgefl.train": "base",
    "edgefl.train_checkpoint": "base",
    "edgefl.device_profiles": "base",
    # the compression core (every module of edgefl.compress): quantizers, quantized layers, BN folding,
    # pruning plans, BOPs accounting and report rows, QAT set-up, restore, the Method protocol
    "edgefl.compress": "base",
    "edgefl.export": "export",
    # the compression methods and their registry
    "edgefl.methods": "methods",
    "edgefl.ghost": "methods",
    "edgefl.picpq": "methods",
    "edgefl.baselines": "methods",
    "edgefl.stad": "methods",
    "edgefl.fl": "methods",
    "edgefl.demo": "journey",
    "edgefl.pack": "journey",
    "edgefl.pack_templates": "journey",
    "edgefl.sim": "journey",
    "edgefl.report": "journey",
    "edgefl.broker": "journey",
    "edgefl.security": "journey",
    "edgefl.cli": "cli",
}

# Edges being removed by work in flight: each one named, so that any other cycle or arrow against the
# layers still fails. Empty this as they go.
IN_FLIGHT = set()

ROOT = Path(__file__).resolve().parents[2]
REGISTRY_ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def package_roots():
    """Top-level package name -> folder, from pyproject.toml (the package-dir mapping)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {"edgefl": ROOT / "edgefl"}
    roots.update({name: ROOT / folder for name, folder in setuptools["package-dir"].items()})
    return roots


def modules():
    """Dotted module name -> (source file, is a package)."""
    found = {}
    roots = package_roots()
    for name, folder in roots.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            dotted = ".".join([name] + (parts[:-1] if is_package else parts))
            found[dotted] = (path, is_package)
    return found


def _targets(node, package):
    """Dotted names a node imports (relative imports resolved against ``package``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parent = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parent + ([node.module] if node.module else []))
        return [base + "." + alias.name for alias in node.names]  # a name, or a submodule
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and REGISTRY_ENTRY.match(node.value):
        return [node.value.split(":", 1)[0]]  # "package.module:attr", a registry entry
    return []


def import_graph(found):
    """Module -> the set of project modules it imports."""
    def resolve(name):
        while name and name not in found:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, (path, is_package) in found.items():
        package = name if is_package else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _targets(node, package):
                if target.split(".")[0] == "edgefl" and resolve(target) not in ("", name):
                    edges.add(resolve(target))
        graph[name] = edges
    return graph


def layer_of(module):
    keys = [k for k in LAYER_OF if module == k or module.startswith(k + ".")]
    keys = [k for k in keys if k != "edgefl" or module == "edgefl"]
    return LAYER_OF[max(keys, key=len)] if keys else None


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
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
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def project_graph():
    graph = import_graph(modules())
    return {a: {b for b in targets if (a, b) not in IN_FLIGHT} for a, targets in graph.items()}


def test_every_module_has_a_layer():
    assert [m for m in sorted(modules()) if layer_of(m) is None] == []


def test_no_import_cycles():
    assert cycles(project_graph()) == []


def test_no_import_cycles_between_packages():
    """The same over edgefl's parts (``edgefl.compress``, ``edgefl.checkpoint``, ``edgefl.runtime``...)."""
    part = lambda module: ".".join(module.split(".")[:2])  # noqa: E731
    graph = {}
    for a, targets in project_graph().items():
        graph.setdefault(part(a), set()).update(part(b) for b in targets if part(b) != part(a))
    assert cycles(graph) == []


def test_imports_follow_the_layers():
    graph = project_graph()
    against = [
        f"{a} ({layer_of(a)}) imports {b} ({layer_of(b)})"
        for a in sorted(graph)
        for b in sorted(graph[a])
        if LAYERS.index(layer_of(b)) > LAYERS.index(layer_of(a))
    ]
    assert against == []


def test_the_checks_can_fail():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    tree = ast.parse("def f():\n    from edgefl.cli import app\n    return 'edgefl.sim.orbit:f'\n")
    found = sorted(t for node in ast.walk(tree) for t in _targets(node, "edgefl.runtime"))
    assert found == ["edgefl.cli.app", "edgefl.sim.orbit"]
    assert layer_of("edgefl.runtime.wire") == "runtime" and layer_of("edgefl.cli.app") == "cli"
    relative = ast.parse("from ..errors import EdgeRuntimeError\n").body[0]
    assert _targets(relative, "edgefl.runtime.codecs") == ["edgefl.runtime.errors.EdgeRuntimeError"]
