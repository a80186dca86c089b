"""Exporting models for deployment: ``model.export("m.onnx")``, or ``dlgpu.export.onnx.export(model, path)``.

The exporters need optional packages (``pip install 'dlgpu[onnx]'``); they are imported only when used.
"""

FORMATS = ("onnx",)


def export(model, filepath, format="onnx", **kwargs):  # noqa: A002 - the Keras argument name
    """Write ``model`` to ``filepath`` in ``format`` (only "onnx" for now); returns the path."""
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; expected one of {FORMATS}")
    from dlgpu.export import onnx
    return onnx.export(model, filepath, **kwargs)


def export_onnx(model, filepath, **kwargs):
    """The same as ``export(model, filepath, format="onnx")``."""
    return export(model, filepath, format="onnx", **kwargs)
