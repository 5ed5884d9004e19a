"""The top-level BUILD covers the project: a py_test per tests/*_test.py, a binary per entry point.

Bazel users run `bazel test //...`; a test file or command without a target would silently
drop out of it. This keeps the rule in the plain pytest run as well (CI checks it with
`bazel query` too).
"""

import ast
import glob
import os

from conftest import REPO_ROOT


def _build():
  with open(os.path.join(REPO_ROOT, "BUILD")) as f:
    return ast.parse(f.read(), "BUILD")  # Starlark BUILD files are Python syntax.


def _calls(macro):
  """The keyword arguments of every top-level call of `macro` in BUILD, as AST nodes."""
  calls = [node.value for node in _build().body
           if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
           and isinstance(node.value.func, ast.Name) and node.value.func.id == macro]
  return [{keyword.arg: keyword.value for keyword in call.keywords} for call in calls]


def _string(node):
  assert isinstance(node, ast.Constant) and isinstance(node.value, str), ast.dump(node)
  return node.value


def _entry_point_modules():
  """Modules of tfgan_app/ and serving/ that run as `python -m`, e.g. "tfgan_app.train"."""
  modules = []
  for path in sorted(glob.glob(os.path.join(REPO_ROOT, "tfgan_app", "*.py")) +
                     glob.glob(os.path.join(REPO_ROOT, "serving", "*.py"))):
    with open(path) as f:
      if 'if __name__ == "__main__":' in f.read():
        relative = os.path.relpath(path, REPO_ROOT)
        modules.append(relative[:-len(".py")].replace(os.sep, "."))
  return modules


def test_every_test_file_has_a_py_test_named_after_it():
  test_files = sorted(os.path.relpath(path, REPO_ROOT)
                      for path in glob.glob(os.path.join(REPO_ROOT, "tests", "*_test.py")))
  targets = {_string(call["src"]): _string(call["name"]) for call in _calls("pytest_file_test")}
  assert "tests/build_test.py" in test_files
  missing = [path for path in test_files if path not in targets]
  assert not missing, f"add a pytest_file_test to BUILD for {missing}"
  assert sorted(targets) == test_files, "BUILD names test files that do not exist"
  for src, name in targets.items():
    assert name == os.path.basename(src)[:-len(".py")]


def test_every_test_gets_conftest_and_configs():
  test_data = [node.value for node in _build().body
               if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "TEST_DATA"]
  assert len(test_data) == 1
  assert sorted(_string(item) for item in test_data[0].elts) == [":configs", "tests/conftest.py"]
  for call in _calls("pytest_file_test"):
    # data = TEST_DATA, or TEST_DATA + more.
    names = {node.id for node in ast.walk(call["data"]) if isinstance(node, ast.Name)}
    assert "TEST_DATA" in names, _string(call["name"])


def test_every_entry_point_has_a_binary():
  modules = _entry_point_modules()
  assert {"tfgan_app.train", "tfgan_app.evaluate", "tfgan_app.export", "serving.server",
          "serving.client"} <= set(modules)
  binaries = {_string(call["module"]): _string(call["name"]) for call in _calls("py_module_binary")}
  missing = [module for module in modules if module not in binaries]
  assert not missing, f"add a py_module_binary to BUILD for {missing}"
  # //:train for tfgan_app.train, //:serving_server for serving.server.
  for module, name in binaries.items():
    package, base = module.split(".")
    assert name == (base if package == "tfgan_app" else f"{package}_{base}"), module
