"""ReLU, LeakyReLU, Softmax, ELU, PReLU: activation functions as layers with their own arguments (Keras 3)."""

from __future__ import annotations

import numbers

from dlgpu import activations, constraints, initializers, ops, regularizers
from dlgpu.layers.base import InputSpec, Layer


def _number(layer, name, value, minimum=None, allow_none=False):
    """``value`` as a float (None kept when allowed); the error names the layer and the argument."""
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or (minimum is not None and value < minimum):
        bound = "a number" if minimum is None else f"a number >= {minimum}"
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): `{name}` must be {bound}"
                         f"{' or None' if allow_none else ''}. Received: {name}={value!r}")
    return float(value)


class _ElementwiseActivation(Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # elementwise: a mask over the steps still holds

    def compute_output_shape(self, input_shape):
        return input_shape


class ReLU(_ElementwiseActivation):
    """max_value if x >= max_value; x if threshold <= x < max_value; negative_slope * (x - threshold) below."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _number(self, "max_value", max_value, 0.0, allow_none=True)
        self.negative_slope = _number(self, "negative_slope", negative_slope, 0.0)
        self.threshold = _number(self, "threshold", threshold, 0.0)

    def call(self, inputs):
        return activations.relu(inputs, self.negative_slope, self.max_value, self.threshold)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


class LeakyReLU(_ElementwiseActivation):
    """x if x >= 0 else negative_slope * x.  The default slope is 0.3, not activations.leaky_relu's 0.2."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:  # Keras 2's name, still accepted by Keras 3
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        self.negative_slope = _number(self, "negative_slope", negative_slope, 0.0)

    def call(self, inputs):
        return ops.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class Softmax(_ElementwiseActivation):
    """Softmax along ``axis`` (an int, or a list of ints normalised together)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        if not axes or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axes):
            raise ValueError(f"Layer '{self.name}' (Softmax): `axis` must be an int or a non-empty list of ints. "
                             f"Received: axis={axis!r}")
        self.axis = [int(a) for a in axis] if isinstance(axis, (list, tuple)) else int(axis)

    def call(self, inputs):
        if isinstance(self.axis, list) and len(self.axis) > 1:
            return ops.exp(ops.subtract(inputs, ops.logsumexp(inputs, axis=tuple(self.axis), keepdims=True)))
        return activations.softmax(inputs, axis=self.axis[0] if isinstance(self.axis, list) else self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class ELU(_ElementwiseActivation):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _number(self, "alpha", alpha)

    def call(self, inputs):
        return ops.elu(inputs, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class PReLU(_ElementwiseActivation):
    """x if x >= 0 else alpha * x, with a learned alpha of the input's shape without the batch axis (size 1
    along ``shared_axes``, counted with the batch as axis 0, so one alpha serves every position there)."""

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = self._get_constraint("alpha_constraint", alpha_constraint)
        axes = None if shared_axes is None else (
            list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes])
        if axes is not None and not all(isinstance(a, numbers.Integral) and not isinstance(a, bool) and a >= 1
                                        for a in axes):
            raise ValueError(f"Layer '{self.name}' (PReLU): `shared_axes` must be None or positive ints (axis 0 is "
                             f"the batch). Received: shared_axes={shared_axes!r}")
        self.shared_axes = None if axes is None else [int(a) for a in axes]

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for axis in self.shared_axes or []:
            if axis >= len(input_shape):
                raise ValueError(f"Layer '{self.name}' (PReLU): shared axis {axis} is out of range for an input of "
                                 f"shape {tuple(input_shape)}")
            shape[axis - 1] = 1
        if any(s is None for s in shape):
            raise ValueError(f"Layer '{self.name}' (PReLU): every non-shared axis must be known to build alpha; "
                             f"received input shape {tuple(input_shape)} with shared_axes={self.shared_axes}")
        self.alpha = self.add_weight(tuple(shape), self.alpha_initializer, name="alpha",
                                     regularizer=self.alpha_regularizer, constraint=self.alpha_constraint)
        shared = set(self.shared_axes or [])
        self.input_spec = InputSpec(ndim=len(input_shape), axes={i: input_shape[i] for i in
                                                                 range(1, len(input_shape)) if i not in shared})
        self.built = True

    def call(self, inputs):
        # relu(x) - alpha * relu(-x), as Keras writes it: the gradient at 0 is 0 for both x and alpha
        return ops.subtract(ops.relu(inputs), ops.multiply(self.alpha, ops.relu(ops.negative(inputs))))

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": constraints.serialize(self.alpha_constraint), "shared_axes": self.shared_axes}
