"""Macros for the top-level BUILD: entry points run like `python -m`, one py_test per pytest file.
"""

def _module_main_impl(ctx):
    ctx.actions.expand_template(
        template = ctx.file._template,
        output = ctx.outputs.out,
        substitutions = {"{MODULE}": ctx.attr.module},
    )

_module_main = rule(
    implementation = _module_main_impl,
    attrs = {
        "module": attr.string(mandatory = True),
        "out": attr.output(mandatory = True),
        "_template": attr.label(
            default = "//.bazel:module_main.py.tpl",
            allow_single_file = True,
        ),
    },
)

def py_module_binary(name, module, deps = [], data = [], **kwargs):
    """A py_binary that runs `module` as `python -m module` does.

    The generated main file sits at the workspace root of the runfiles, so `from tfgan_app import`
    resolves as in the checkout and no module of the package shadows a top-level one.

    Args:
      name: the target, e.g. "train" for `bazel run //:train`.
      module: the dotted module name, e.g. "tfgan_app.train".
      deps: py_library targets the module needs.
      data: files it reads at run time.
      **kwargs: passed to py_binary.
    """
    main = "_%s_main.py" % name
    _module_main(
        name = "_%s_main" % name,
        module = module,
        out = main,
    )
    native.py_binary(
        name = name,
        srcs = [main],
        main = main,
        deps = deps,
        data = data,
        python_version = "PY3",
        legacy_create_init = False,
        **kwargs
    )

def pytest_file_test(name, src, deps = [], data = [], **kwargs):
    """A py_test that runs the pytest file `src` (with tests/conftest.py) and nothing else.

    Args:
      name: the target, e.g. "train_test" for tests/train_test.py.
      src: the pytest file.
      deps: py_library targets it imports.
      data: files it reads: configs, fixtures, conftest.py.
      **kwargs: passed to py_test (size, tags, ...).
    """
    runner = "//.bazel:pytest_runner.py"
    native.py_test(
        name = name,
        srcs = [runner, src],
        main = runner,
        args = ["$(rootpath %s)" % src],
        deps = deps,
        data = data,
        python_version = "PY3",
        legacy_create_init = False,
        **kwargs
    )
