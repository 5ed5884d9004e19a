"""The import rules of README's "Architecture", checked on the sources (no module is imported).

Commands (`python -m tfgan_app.<cmd>`, `python -m serving.<cmd>`: modules with a `__main__`
block) sit on top; libraries live in packages grouped by concern, each importing only packages
below it. Bazel `py_library` deps alone do not stop a Python import at run time, so this test is
the enforcement that fails: it builds the import graph with `ast` and checks

- no import circle between modules (a module also imports its parent packages, so a package
  `__init__` that imports its own submodules is a circle too) nor between packages;
- no module imports a command;
- `serving/` (serving/benchmark.py aside: it builds a model to export) reaches no module that
  imports Keras, directly or through other modules;
- no module of tfgan_app/ or serving/ is longer than MAX_LINES;
- each package's py_library in BUILD lists (at least) the packages its modules import.
"""

import ast
import glob
import os
from typing import Dict, List, Set

from conftest import REPO_ROOT

MAX_LINES = 400
# The one serving module allowed to reach Keras: the serving benchmark exports a model first.
SERVING_KERAS_EXEMPT = {"serving.benchmark"}
_ROOTS = ("tfgan_app", "serving")
_KERAS = ("keras", "tensorflow.keras", "tf_keras")


def _module_name(path: str) -> str:
  relative = os.path.relpath(path, REPO_ROOT)[:-len(".py")].replace(os.sep, ".")
  return relative[:-len(".__init__")] if relative.endswith(".__init__") else relative


def _sources() -> Dict[str, str]:
  """Module name -> path, for every module of tfgan_app/ and serving/."""
  paths = []
  for root in _ROOTS:
    paths += glob.glob(os.path.join(REPO_ROOT, root, "**", "*.py"), recursive=True)
  return {_module_name(path): path for path in sorted(paths)}


_MODULES = _sources()
_TREES = {}


def _tree(module: str) -> ast.Module:
  if module not in _TREES:
    with open(_MODULES[module]) as f:
      _TREES[module] = ast.parse(f.read(), _MODULES[module])
  return _TREES[module]


def _is_command(module: str) -> bool:
  for node in _tree(module).body:
    if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
        and ast.unparse(node.test) in ("__name__ == '__main__'", '__name__ == "__main__"')):
      return True
  return False


def _parents(module: str) -> List[str]:
  parts = module.split(".")
  return [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in _MODULES]


def _imported_names(module: str) -> Set[str]:
  """Every dotted name `module` imports, anywhere in the file (function-level imports too)."""
  names = set()
  for node in ast.walk(_tree(module)):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      for alias in node.names:
        names.add(f"{node.module}.{alias.name}")  # A submodule, or a name inside node.module.
        names.add(node.module)
  return names


def _imports(module: str) -> Set[str]:
  """The project modules `module` imports (the parents of each, which Python runs first)."""
  targets = set()
  for name in _imported_names(module):
    if name in _MODULES:
      targets.add(name)
      targets.update(_parents(name))
  # `from a.b import c` names both a.b and a.b.c; a.b.c counts only when it is a module.
  targets.update(_parents(module))
  targets.discard(module)
  return targets


def _graph() -> Dict[str, Set[str]]:
  return {module: _imports(module) for module in _MODULES}


def _package(module: str) -> str:
  """tfgan_app.<package> for library modules; the module itself for commands and serving."""
  parts = module.split(".")
  if parts[0] == "tfgan_app" and len(parts) > 2:
    return ".".join(parts[:2])
  if parts[0] == "tfgan_app" and len(parts) == 2 and os.path.basename(
      _MODULES[module]) == "__init__.py":
    return module
  return module if parts[0] == "tfgan_app" else "serving"


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
  """Strongly connected components with more than one node (Tarjan)."""
  index, low, stack, on_stack, result = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in sorted(graph.get(node, ())):
      if target not in index:
        visit(target)
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
        result.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return result


def _reaches(graph: Dict[str, Set[str]], start: str) -> Set[str]:
  seen, todo = set(), [start]
  while todo:
    for target in graph[todo.pop()]:
      if target not in seen:
        seen.add(target)
        todo.append(target)
  return seen


def _imports_keras_directly(module: str) -> bool:
  return any(name == prefix or name.startswith(prefix + ".")
             for name in _imported_names(module) for prefix in _KERAS)


def test_the_graph_sees_the_layout():
  graph = _graph()
  assert "tfgan_app.exporting.contract" in graph["serving.client"]
  assert "tfgan_app.training.loop" in graph["tfgan_app.train"]
  assert _is_command("tfgan_app.train") and not _is_command("tfgan_app.training.loop")


def test_no_import_circles_between_modules():
  cycles = _cycles(_graph())
  assert not cycles, f"import circles: {cycles}"


def test_no_import_circles_between_packages():
  packages: Dict[str, Set[str]] = {}
  for module, targets in _graph().items():
    source = _package(module)
    packages.setdefault(source, set()).update(
        _package(target) for target in targets if _package(target) != source)
  cycles = _cycles(packages)
  assert not cycles, f"package circles (a package may import only packages below it): {cycles}"


def test_nothing_imports_a_command():
  commands = {module for module in _MODULES if _is_command(module)}
  assert {"tfgan_app.train", "tfgan_app.evaluate", "serving.server"} <= commands
  offenders = sorted(f"{module} imports {target}" for module, targets in _graph().items()
                     for target in targets if target in commands)
  assert not offenders, "commands are on top; move the code into a library: " + str(offenders)


def test_serving_needs_no_keras():
  graph = _graph()
  keras_modules = {module for module in _MODULES if _imports_keras_directly(module)}
  assert "tfgan_app.exporting.saved_model" in keras_modules  # The check sees Keras imports.
  assert "tfgan_app.exporting.contract" not in keras_modules
  offenders = []
  for module in _MODULES:
    if module.startswith("serving") and module not in SERVING_KERAS_EXEMPT:
      reached = sorted((_reaches(graph, module) | {module}) & keras_modules)
      if reached:
        offenders.append(f"{module} -> {reached}")
  assert not offenders, f"serving/ must not reach Keras (use tfgan_app.exporting.contract): " \
                        f"{offenders}"


def test_no_module_over_the_size_limit():
  too_long = []
  for module, path in _MODULES.items():
    with open(path) as f:
      lines = len(f.read().splitlines())
    if lines > MAX_LINES:
      too_long.append(f"{os.path.relpath(path, REPO_ROOT)}: {lines}")
  assert not too_long, f"modules over {MAX_LINES} lines (split them by concern): {too_long}"


def _build_libraries() -> Dict[str, dict]:
  """py_library name -> {"srcs": glob patterns and files, "deps": labels}, from BUILD."""
  with open(os.path.join(REPO_ROOT, "BUILD")) as f:
    tree = ast.parse(f.read(), "BUILD")
  libraries = {}
  for node in tree.body:
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and ast.unparse(node.value.func) == "py_library"):
      continue
    keywords = {keyword.arg: keyword.value for keyword in node.value.keywords}
    strings = lambda value: [n.value for n in ast.walk(value)
                             if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    excludes = []
    for call in ast.walk(keywords["srcs"]):
      for keyword in getattr(call, "keywords", []):
        if keyword.arg == "exclude":
          excludes = strings(keyword.value)
    libraries[keywords["name"].value] = {
        "srcs": [s for s in strings(keywords["srcs"]) if s not in excludes],
        "exclude": excludes,
        "deps": [label.lstrip(":") for label in strings(keywords.get("deps", ast.List([])))]}
  return libraries


def _library_of(libraries: Dict[str, dict]) -> Dict[str, str]:
  """Module -> the py_library whose srcs hold it."""
  owner = {}
  for name, library in libraries.items():
    for pattern in library["srcs"]:
      for path in glob.glob(os.path.join(REPO_ROOT, pattern), recursive=True):
        relative = os.path.relpath(path, REPO_ROOT)
        if relative in library["exclude"] or not path.endswith(".py"):
          continue
        module = _module_name(path)
        assert module not in owner, f"{relative} is in two py_library targets"
        owner[module] = name
  return owner


def test_every_module_is_in_one_py_library():
  owner = _library_of(_build_libraries())
  missing = sorted(set(_MODULES) - set(owner))
  assert not missing, f"add these modules to their package's py_library in BUILD: {missing}"


def test_build_deps_follow_the_imports():
  libraries = _build_libraries()
  owner = _library_of(libraries)
  missing = []
  for module, targets in _graph().items():
    library = owner[module]
    for target in targets:
      needed = owner[target]
      if needed != library and needed not in libraries[library]["deps"]:
        missing.append(f"{library} needs :{needed} ({module} imports {target})")
  assert not missing, f"BUILD deps do not match the imports: {sorted(set(missing))}"
