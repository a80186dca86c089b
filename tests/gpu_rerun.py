"""Re-running emulator kernel tests on a real GPU: the tests that take the ``kb`` (kernel backend) fixture
are collected from their files and re-registered in a GPU test module, where ``kb`` is the CuPy library."""

import importlib.util
import inspect
from pathlib import Path


def backend_tests(directory, *stems):
    """{test name: function} for every ``kb``-taking test of ``<directory>/<stem>.py``, renamed per file."""
    tests = {}
    for stem in stems:
        spec = importlib.util.spec_from_file_location(f"_gpu_rerun_{stem}", Path(directory) / f"{stem}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        tests.update({f"{name}__{stem[5:]}": fn for name, fn in vars(mod).items()
                      if name.startswith("test_") and callable(fn) and "kb" in inspect.signature(fn).parameters})
    return tests
