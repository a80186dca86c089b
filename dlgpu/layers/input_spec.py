"""InputSpec: what a layer accepts (keras.InputSpec); a layer sets ``self.input_spec`` and __call__ checks
its inputs' shapes against it."""

from __future__ import annotations


class InputSpec:
    """What a layer accepts: ndim / min_ndim and fixed sizes on given axes (as keras.InputSpec)."""

    def __init__(self, dtype=None, shape=None, ndim=None, max_ndim=None, min_ndim=None, axes=None):
        self.dtype = dtype
        self.shape = shape
        self.ndim = len(shape) if shape is not None else ndim
        self.max_ndim = max_ndim
        self.min_ndim = min_ndim
        self.axes = axes or {}

    def check(self, layer_name, shape):
        rank = len(shape)
        if self.ndim is not None and rank != self.ndim:
            raise ValueError(f"Input 0 of layer '{layer_name}' is incompatible with the layer: expected ndim={self.ndim}, "
                             f"found ndim={rank}. Full shape received: {tuple(shape)}")
        if self.min_ndim is not None and rank < self.min_ndim:
            raise ValueError(f"Input 0 of layer '{layer_name}' is incompatible with the layer: expected min_ndim="
                             f"{self.min_ndim}, found ndim={rank}. Full shape received: {tuple(shape)}")
        if self.max_ndim is not None and rank > self.max_ndim:
            raise ValueError(f"Input 0 of layer '{layer_name}' is incompatible with the layer: expected max_ndim="
                             f"{self.max_ndim}, found ndim={rank}. Full shape received: {tuple(shape)}")
        for axis, size in self.axes.items():
            if shape[axis] is not None and shape[axis] != size:
                raise ValueError(f"Input 0 of layer '{layer_name}' is incompatible with the layer: expected axis {axis} "
                                 f"of input shape to have value {size}, but received input with shape {tuple(shape)}")
