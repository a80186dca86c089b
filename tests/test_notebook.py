"""examples/quickstart.ipynb runs end to end in a real kernel (nbclient + ipykernel) on a subset of MNIST.

CI keeps it short with DLGPU_QUICKSTART_SAMPLES=2000 and one epoch (set here unless the caller set them).
A cell that raises fails the test with the cell and its traceback (nbclient's CellExecutionError).
"""

import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

REPO = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "examples" / "quickstart.ipynb"
CELL_TIMEOUT_S = 180


def outputs_text(cell):
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"outputs left in cell:\n{cell.source[:200]}"
    assert any("parameters" in c.metadata.get("tags", []) for c in code), "no cell tagged 'parameters'"


def test_quickstart_runs_end_to_end(tmp_path, monkeypatch, real_mnist_root):  # no downloads in tests
    monkeypatch.setenv("DLGPU_QUICKSTART_SAMPLES", os.environ.get("DLGPU_QUICKSTART_SAMPLES", "2000"))
    monkeypatch.setenv("DLGPU_QUICKSTART_EPOCHS", os.environ.get("DLGPU_QUICKSTART_EPOCHS", "1"))
    # ipykernel's inline backend draws with Agg into PNG outputs: headless, and the test can see the figures.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebook saves its model under tempfile.mkdtemp()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell on any error

    cells = [c for c in nb.cells if c.cell_type == "code"]
    by_code = {name: next(c for c in cells if marker in c.source) for name, marker in [
        ("fit", "model.fit("), ("plot", "history.plot()"), ("predictions", "imshow"),
        ("save", "model.save("), ("devices", 'keras.device("cpu")'), ("bad input", "forgot the channel axis")]}
    fit_outputs = by_code["fit"].outputs
    widget = any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in fit_outputs)
    assert widget or "Epoch 1/1" in outputs_text(by_code["fit"]), "fit showed no progress bar"
    assert "test accuracy" in outputs_text(by_code["fit"])
    for name in ("plot", "predictions"):
        assert any("image/png" in o.get("data", {}) for o in by_code[name].outputs), f"the {name} cell drew nothing"
    assert "the reloaded model predicts the same" in outputs_text(by_code["save"])
    assert "agrees: True" in outputs_text(by_code["devices"])
    bad = outputs_text(by_code["bad input"])
    assert "Input 0 of layer 'conv2d' is incompatible" in bad and "expected ndim=4" in bad, bad
    assert "same number of samples" in bad, bad
