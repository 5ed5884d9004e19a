"""The Python interpreter Bazel runs py_* targets with: the project's virtual environment.

Bazel 4 ignores --python_path once toolchains resolve the runtime, so a repository rule writes a
py_runtime toolchain that points at $BAZEL_PYTHON, or else the first `python3` on PATH (an
activated .venv). Nothing is downloaded.
"""

# The packages every target needs; checked up front so that a wrong interpreter fails with one
# line here instead of an ImportError in every test.
_REQUIRED_MODULES = ["absl", "pytest", "tensorflow"]

_CHECK = """
import importlib.util, sys
missing = [name for name in sys.argv[1:] if importlib.util.find_spec(name) is None]
print(" ".join(missing))
"""

_BUILD = """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "python3",
    interpreter_path = "{interpreter}",
    python_version = "PY3",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":python3",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
"""

_HOW = ("activate the project's virtual environment (. .venv/bin/activate) or set " +
        "BAZEL_PYTHON=$PWD/.venv/bin/python")

def _python_interpreter_impl(ctx):
    interpreter = ctx.os.environ.get("BAZEL_PYTHON", "")
    if interpreter:
        if not interpreter.startswith("/"):
            # Relative to the workspace root, wherever bazel was started from inside it.
            workspace = ctx.path(Label("@//:WORKSPACE")).dirname
            interpreter = "%s/%s" % (workspace, interpreter)
        source = "BAZEL_PYTHON"
    else:
        found = ctx.which("python3")
        if not found:
            fail("no python3 on PATH; " + _HOW)
        interpreter = str(found)
        source = "the first python3 on PATH"

    # Not resolved through symlinks: a venv's bin/python is a link to the system Python, and
    # only the link's own location makes Python use the venv's site-packages.
    result = ctx.execute([interpreter, "-c", _CHECK] + _REQUIRED_MODULES)
    if result.return_code != 0:
        fail("cannot run %s (%s): %s; %s" % (interpreter, source, result.stderr.strip(), _HOW))
    missing = result.stdout.strip()
    if missing:
        fail("%s (%s) lacks %s; %s" % (interpreter, source, missing, _HOW))
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", _BUILD.format(interpreter = interpreter))

python_interpreter = repository_rule(
    implementation = _python_interpreter_impl,
    # Re-evaluated when either changes, e.g. after activating another virtual environment.
    environ = ["BAZEL_PYTHON", "PATH"],
    local = True,
)
