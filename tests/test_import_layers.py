"""The package's architecture as a contract: lower layers never import higher ones, no import cycles,
and no imports of our own modules hidden inside functions.

Layers, lowest first (a module may import its own layer and the ones below):

    0  foundation     gfa_jax (package), allocator, losses, data, files, console, augmentation,
                      random_draws
    1  building blocks models, attacks
    2  configuration  config, paper_configs, hyperparameters
    3  defenses       defenses (and gfa, the GFA term's stable import path)
    4  training       training
    5  evaluation     evaluation, audit
    6  orchestration  sweeps
    7  entry points   main, evaluate, gfa_table, launch

The modules are read with ``ast``, not imported, so the test sees every import statement wherever it
is, and it fails on a module that no layer claims.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

import gfa_jax

PACKAGE_ROOT = pathlib.Path(gfa_jax.__file__).parent

LAYERS = (
    ("gfa_jax", "gfa_jax.allocator", "gfa_jax.losses", "gfa_jax.data", "gfa_jax.files", "gfa_jax.console",
     "gfa_jax.augmentation", "gfa_jax.random_draws"),
    ("gfa_jax.models", "gfa_jax.attacks"),
    ("gfa_jax.config", "gfa_jax.paper_configs", "gfa_jax.hyperparameters"),
    ("gfa_jax.defenses", "gfa_jax.gfa"),
    ("gfa_jax.training",),
    ("gfa_jax.evaluation",),
    ("gfa_jax.sweeps",),
    ("gfa_jax.main", "gfa_jax.evaluate", "gfa_jax.gfa_table", "gfa_jax.audit", "gfa_jax.launch"),
)


def module_name(path: pathlib.Path) -> str:
    parts = ("gfa_jax",) + path.relative_to(PACKAGE_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def layer_of(name: str) -> int:
    """The layer of the longest prefix that claims ``name`` (``gfa_jax`` itself claims only itself)."""
    best, best_length = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            claims = name == prefix or (prefix != "gfa_jax" and name.startswith(prefix + "."))
            if claims and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{name} belongs to no layer: add it to LAYERS in {__file__}.")
    return best


def imported_modules(tree: ast.Module, importer: str) -> list[tuple[str, int, bool]]:
    """``(module, line, at_top_level)`` for every import of a gfa_jax module in ``tree``."""
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{importer} line {node.lineno}: use absolute imports (from gfa_jax...)."
            module = node.module or ""
            # ``from gfa_jax.training import train``: the imported names may be modules themselves.
            names = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module for alias in node.names]
        else:
            continue
        for name in names:
            if name == "gfa_jax" or name.startswith("gfa_jax."):
                found.append((name, node.lineno, id(node) in top_level))
    return found


GRAPH = {name: imported_modules(ast.parse(path.read_text()), name) for name, path in MODULES.items()}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_imports_only_its_layer_and_below(name):
    own = layer_of(name)
    for imported, line, _ in GRAPH[name]:
        assert layer_of(imported) <= own, (
            f"{name} (layer {own}) imports {imported} (layer {layer_of(imported)}) at line {line}: a lower layer "
            f"must not depend on a higher one; move the shared piece down.")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_imports_of_our_modules_inside_functions(name):
    hidden = [(imported, line) for imported, line, top in GRAPH[name] if not top]
    assert not hidden, f"{name} imports {hidden} inside a function or block; import at the top of the module."


def test_no_import_cycles():
    edges = {name: {imported for imported, _, _ in GRAPH[name] if imported in MODULES and imported != name}
             for name in MODULES}
    # A package's __init__ importing its own submodules is how packages re-export, not a cycle.
    for name in edges:
        edges[name] = {m for m in edges[name] if not (m.startswith(name + ".") and MODULES[name].name == "__init__.py")}
    visiting, done = set(), set()

    def visit(node, path):
        if node in done:
            return
        assert node not in visiting, "import cycle: " + " -> ".join(path[path.index(node):] + [node])
        visiting.add(node)
        for nxt in sorted(edges[node]):
            visit(nxt, path + [node])
        visiting.discard(node)
        done.add(node)

    for name in sorted(edges):
        visit(name, [])


def test_the_contract_sees_the_package():
    assert len(MODULES) > 40 and all(layer_of(name) >= 0 for name in MODULES)
    assert layer_of("gfa_jax.defenses.gfa") == 3 and layer_of("gfa_jax.attacks.gradient.pgd") == 1
