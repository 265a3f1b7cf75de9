"""The package layout, checked from the source: every import (module level or inside a
function) is an edge; packages form no cycle, and no library package imports the application
layer (vaujax.app) or the user configs.

Entry-point shims are the one exception, and they are kept trivially small: `__main__.py` files
and code under `if __name__ == "__main__":` only run as `python -m ...`, never on import, so they
create no import edge (each one only hands over to `vaujax.app`).
"""

import ast
import collections
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vaujax")
APP = "vaujax.app"
SHIMS = {"vaujax.demo", "vaujax.infer"}   # top-level `python -m` entry points, app layer


def _module_name(path):
  rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
  return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _is_main_guard(node):
  return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
          and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _imports(tree, module, is_package):
  """Every imported module name, main guards excluded."""
  out = []

  def visit(node):
    if _is_main_guard(node):
      return
    if isinstance(node, ast.Import):
      out.extend(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = module.split(".")[:len(module.split(".")) - node.level + (1 if is_package else 0)]
        name = ".".join(base + ([node.module] if node.module else []))
      else:
        name = node.module
      out.append(name)
      out.extend(f"{name}.{a.name}" for a in node.names)
    for child in ast.iter_child_nodes(node):
      visit(child)

  visit(tree)
  return [n for n in out if n and n.split(".")[0] in ("vaujax", "configs")]


def _package(module):
  parts = module.split(".")
  if parts[0] == "configs":
    return "configs"
  return ".".join(parts[:2])


def _modules():
  for folder, _, names in os.walk(ROOT):
    for name in names:
      if name.endswith(".py"):
        yield os.path.join(folder, name)


def _edges():
  """{(from package, to package): [example 'module -> import']}, shims excluded."""
  edges = collections.defaultdict(list)
  for path in _modules():
    module = _module_name(path)
    if path.endswith("__main__.py") or module in SHIMS:
      continue
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    for name in _imports(tree, module, path.endswith("__init__.py")):
      a, b = _package(module), _package(name)
      if a != b and b != "vaujax":
        edges[(a, b)].append(f"{module} -> {name}")
  return edges


def test_the_walk_sees_imports_inside_functions_and_skips_main_guards():
  tree = ast.parse("import os\ndef f():\n  from vaujax.app import cli\n"
                   "if __name__ == '__main__':\n  from vaujax.app import demo\n")
  assert _imports(tree, "vaujax.data.x", False) == ["vaujax.app", "vaujax.app.cli"]
  rel = ast.parse("from . import conversation\nfrom ..models import llama\n")
  assert _imports(rel, "vaujax.data.x", False) == [
      "vaujax.data", "vaujax.data.conversation", "vaujax.models", "vaujax.models.llama"]


def test_no_cycle_between_packages():
  graph = collections.defaultdict(set)
  for a, b in _edges():
    graph[a].add(b)
  state = {}

  def dfs(node, stack):
    state[node] = "open"
    for nxt in sorted(graph[node]):
      if state.get(nxt) == "open":
        cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
        edges = _edges()
        pytest.fail("package cycle " + " -> ".join(cycle) + "; e.g. " + "; ".join(
            edges[(x, y)][0] for x, y in zip(cycle, cycle[1:])))
      if nxt not in state:
        dfs(nxt, stack + [nxt])
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      dfs(node, [node])


def test_library_never_imports_the_application_layer_or_configs():
  bad = {k: v for k, v in _edges().items()
         if k[0] not in (APP, "configs") and k[1] in (APP, "configs")}
  assert not bad, "; ".join(v[0] for v in bad.values())


def test_entry_point_shims_only_hand_over_to_the_app():
  for path in _modules():
    module = _module_name(path)
    if not (path.endswith("__main__.py") or module in SHIMS):
      continue
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    imported = {n for node in ast.walk(tree) for n in _imports(node, module, False)
                if isinstance(node, (ast.Import, ast.ImportFrom))}
    assert imported and all(n.startswith(APP) for n in imported), (path, imported)
    assert len(tree.body) <= 4, f"{path}: a shim should only import and run its command"
