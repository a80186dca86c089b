"""keras.export as an attribute of the package, as `import keras; keras.export...` reads it."""

import subprocess
import sys


def test_dlgpu_export_is_reachable_from_the_package_and_loads_on_first_use():
    code = ("import sys, dlgpu\n"
            "assert 'dlgpu.export' not in sys.modules\n"
            "assert dlgpu.export.FORMATS == ('onnx',)\n"
            "assert 'onnx' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "DLGPU_DEVICE": "cpu"})
    assert out.returncode == 0, out.stderr
