"""BatchNormalization, LayerNormalization, GroupNormalization, UnitNormalization, RMSNormalization."""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from dlgpu import constraints, initializers, ops, regularizers
from dlgpu.layers.base import InputSpec, Layer


def _axis_list(layer, axis):
    """Keras's axis argument: an int, or a list/tuple of ints (kept as a list, as Keras's config has it)."""
    def is_int(a):
        return isinstance(a, numbers.Integral) and not isinstance(a, bool)
    if is_int(axis):
        return int(axis)
    if isinstance(axis, (list, tuple)) and axis and all(is_int(a) for a in axis):
        return [int(a) for a in axis]
    raise TypeError(f"Layer '{layer.name}' ({type(layer).__name__}): expected an int or a list/tuple of ints for "
                    f"the argument 'axis'. Received: axis={axis!r}")


def _canonical_axes(layer, axis, input_shape):
    """Axes as sorted non-negative ints, each within the input's rank and named once."""
    rank = len(input_shape)
    axes = [axis] if isinstance(axis, int) else list(axis)
    for a in axes:
        if not -rank <= a < rank:
            raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): axis {a} is out of bounds for input "
                             f"shape {tuple(input_shape)}. Received: axis={axis!r}")
    axes = sorted(a % rank for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): duplicate axes are not allowed. "
                         f"Received: axis={axis!r}")
    return axes


def _known_sizes(layer, axes, input_shape):
    sizes = tuple(input_shape[a] for a in axes)
    if any(s is None for s in sizes):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): axes {axes} of the input must have a "
                         f"defined size; received input shape {tuple(input_shape)}")
    return sizes


class BatchNormalization(Layer):
    """Normalises with batch statistics while training and with moving averages at inference.

    moving = moving * momentum + batch * (1 - momentum), Keras's convention (momentum=0.99).
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if renorm:
            raise NotImplementedError(f"Layer '{self.name}' (BatchNormalization): batch renormalization is not "
                                      f"implemented in dlgpu; received renorm={renorm!r}")
        if synchronized:  # Keras too refuses it outside TensorFlow
            raise ValueError(f"Layer '{self.name}' (BatchNormalization): synchronized=True is only supported with "
                             f"the TensorFlow backend of Keras; dlgpu trains on one device")
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"Layer '{self.name}' (BatchNormalization): `axis` must be an int; received axis={axis!r}")
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = float(renorm_momentum)
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = self._get_constraint("beta_constraint", beta_constraint)
        self.gamma_constraint = self._get_constraint("gamma_constraint", gamma_constraint)

    def build(self, input_shape):
        rank = len(input_shape)
        _canonical_axes(self, self.axis, input_shape)
        axis = self.axis % rank
        size = input_shape[axis]
        if size is None:
            raise ValueError(f"Layer '{self.name}': axis {self.axis} of the input must be known; received {input_shape}")
        self._axis = axis
        self._reduce_axes = tuple(i for i in range(rank) if i != axis)
        self._param_shape = tuple(size if i == axis else 1 for i in range(rank))
        # autocast=False, as Keras: the statistics are computed in float32 (see call) and so are the weights read
        self.gamma = self.add_weight((size,), self.gamma_initializer, name="gamma", regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint, autocast=False) if self.scale else None
        self.beta = self.add_weight((size,), self.beta_initializer, name="beta", regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint, autocast=False) if self.center else None
        self.moving_mean = self.add_weight((size,), self.moving_mean_initializer, name="moving_mean", trainable=False,
                                           autocast=False)
        self.moving_variance = self.add_weight((size,), self.moving_variance_initializer, name="moving_variance",
                                               trainable=False, autocast=False)
        self.input_spec = InputSpec(ndim=rank, axes={axis: size})
        self.built = True

    def _shaped(self, variable):
        return None if variable is None else ops.reshape(variable, self._param_shape)

    def call(self, inputs, training=None):
        if inputs.data.dtype == np.float16:
            # Keras: float16 batch statistics overflow (a sum of squares past 65504), so they are taken in
            # float32 and the result comes back in the compute dtype
            out = self._normalize(ops.cast(inputs, "float32"), training)
            return ops.cast(out, self.compute_dtype)
        return self._normalize(inputs, training)

    def _normalize(self, inputs, training):
        if training and self.trainable:
            out, mean, var = ops.batch_norm_train(inputs, self._shaped(self.gamma), self._shaped(self.beta),
                                                  self._reduce_axes, self.epsilon)
            # not in a rematerialized call's rerun (the first run updated them); in a StatelessScope, in its copy
            if not (self.moving_mean._prepare_write() and self.moving_variance._prepare_write()):
                return out
            keep = self.momentum
            self.moving_mean.data *= keep
            self.moving_mean.data += (1.0 - keep) * mean.reshape(-1)
            self.moving_variance.data *= keep
            self.moving_variance.data += (1.0 - keep) * var.reshape(-1)
            return out
        return ops.batch_normalization(inputs, self._shaped(self.moving_mean), self._shaped(self.moving_variance),
                                       offset=self._shaped(self.beta), scale=self._shaped(self.gamma),
                                       epsilon=self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint), "synchronized": False, "renorm": False,
                "renorm_clipping": self.renorm_clipping, "renorm_momentum": self.renorm_momentum}


class _AffineNormalization(Layer):
    """What LayerNormalization and GroupNormalization share: gamma and beta, their initializers and
    regularizers and constraints, and the config entries for all of them."""

    def _init_affine(self, epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                     gamma_regularizer, beta_constraint, gamma_constraint):
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not epsilon >= 0:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): `epsilon` must be a non-negative "
                             f"float. Received: epsilon={epsilon!r}")
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = self._get_constraint("beta_constraint", beta_constraint)
        self.gamma_constraint = self._get_constraint("gamma_constraint", gamma_constraint)

    def _add_gamma_beta(self, shape, gamma=True, beta=True):
        self.gamma = self.add_weight(shape, self.gamma_initializer, name="gamma", regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint) if gamma else None
        self.beta = self.add_weight(shape, self.beta_initializer, name="beta", regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint) if beta else None

    def compute_output_shape(self, input_shape):
        _canonical_axes(self, self.axis, input_shape)
        return input_shape

    def _affine_config(self):
        return {"epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}


class LayerNormalization(_AffineNormalization):
    """Normalises each sample over ``axis`` (an int or a list of axes); gamma and beta span those axes.

    ``rms_scaling=True`` is Keras's deprecated variant (x / sqrt(var + eps) * gamma, no beta); Keras warns
    and points to RMSNormalization, and so does dlgpu.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, rms_scaling=False, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # per sample (per step): padding does not leak in
        if rms_scaling:
            warnings.warn("You passed `rms_scaling=True`, which is deprecated. This argument incorrectly scales "
                          "the input by the variance, not the root mean square. To correctly use RMS "
                          "Normalization, please use `keras.layers.RMSNormalization` instead.", stacklevel=2)
        self.axis = _axis_list(self, axis)
        self.rms_scaling = bool(rms_scaling)
        self.autocast = False  # as Keras: ops.layer_normalization computes half precision in float32
        self._init_affine(epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                          gamma_regularizer, beta_constraint, gamma_constraint)

    def build(self, input_shape):
        axes = _canonical_axes(self, self.axis, input_shape)
        shape = _known_sizes(self, axes, input_shape)
        self._axes = axes
        # As Keras: a sorted list from here on (and in the config), negative axes left negative.
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        self._add_gamma_beta(shape, gamma=self.scale or self.rms_scaling, beta=self.center and not self.rms_scaling)
        self.input_spec = InputSpec(ndim=len(input_shape), axes=dict(zip(axes, shape)))
        self.built = True

    def call(self, inputs):
        out = ops.layer_normalization(inputs, self.gamma, self.beta, self._axes, self.epsilon,
                                      rms_scaling=self.rms_scaling)
        return out if out.data.dtype == self._compute_float else ops.cast(out, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, **self._affine_config(), "rms_scaling": self.rms_scaling}


class GroupNormalization(_AffineNormalization):
    """Normalises each sample within groups of channels: the ``axis`` channels split into ``groups``
    groups, each normalised over its channels and every axis but the batch; gamma and beta per channel.
    groups=-1 is instance normalization (one channel per group); groups=1 normalises each sample whole.
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # per sample (per step): padding does not leak in
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or (groups <= 0 and groups != -1):
            raise ValueError(f"Layer '{self.name}' (GroupNormalization): invalid value for argument `groups`, "
                             f"expected a positive integer (or -1 for instance normalization). Received: "
                             f"groups={groups!r}")
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"Layer '{self.name}' (GroupNormalization): `axis` must be an int (the channel axis). "
                            f"Received: axis={axis!r}")
        self.groups = int(groups)
        self.axis = int(axis)
        self.autocast = False  # as Keras: the group statistics of half-precision inputs are taken in float32
        self._init_affine(epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                          gamma_regularizer, beta_constraint, gamma_constraint)

    def build(self, input_shape):
        (axis,) = _canonical_axes(self, self.axis, input_shape)
        if axis == 0:
            raise ValueError(f"Layer '{self.name}' (GroupNormalization): axis 0 is the batch axis; groups split the "
                             f"channel axis. Received: axis={self.axis}")
        (channels,) = _known_sizes(self, [axis], input_shape)
        if self.groups == -1:  # as Keras: the config then records the resolved count
            self.groups = channels
        if channels < self.groups:
            raise ValueError(f"Layer '{self.name}' (GroupNormalization): number of groups ({self.groups}) cannot be "
                             f"more than the number of channels ({channels}); input shape {tuple(input_shape)}")
        if channels % self.groups:
            raise ValueError(f"Layer '{self.name}' (GroupNormalization): the number of channels ({channels}) must "
                             f"be a multiple of the number of groups ({self.groups}); input shape "
                             f"{tuple(input_shape)}")
        self._add_gamma_beta((channels,), gamma=self.scale, beta=self.center)
        self.input_spec = InputSpec(ndim=len(input_shape), axes={axis: channels})
        self.built = True

    def call(self, inputs):
        shape = tuple(inputs.shape)
        axis = self.axis % len(shape)
        # (..., C, ...) -> (..., groups, C // groups, ...): each group is normalised over every axis but the
        # batch and the group axis, one fused normalisation op; the per-channel gamma and beta follow.
        grouped = shape[:axis] + (self.groups, shape[axis] // self.groups) + shape[axis + 1:]
        if inputs.data.dtype == np.float16:
            inputs = ops.cast(inputs, "float32")
        reduce = tuple(a for a in range(1, len(grouped)) if a != axis)
        out, _, _ = ops.batch_norm_train(ops.reshape(inputs, grouped), None, None, reduce, self.epsilon)
        out = ops.reshape(out, shape)
        param_shape = tuple(shape[axis] if a == axis else 1 for a in range(len(shape)))
        if self.gamma is not None:
            out = ops.multiply(out, ops.reshape(self.gamma, param_shape))
        if self.beta is not None:
            out = ops.add(out, ops.reshape(self.beta, param_shape))
        return out if out.data.dtype == self._compute_float else ops.cast(out, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis, **self._affine_config()}


class UnitNormalization(Layer):
    """Scales each sample to unit L2 norm over ``axis`` (an int or a list of axes)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # per sample (per step): padding does not leak in
        self.axis = _axis_list(self, axis)

    def call(self, inputs):
        return ops.normalize(inputs, axis=tuple(self.axis) if isinstance(self.axis, list) else self.axis, order=2,
                             epsilon=1e-12)

    def build(self, input_shape):
        _canonical_axes(self, self.axis, input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        _canonical_axes(self, self.axis, input_shape)
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class RMSNormalization(Layer):
    """x / sqrt(mean(x^2) + epsilon) * scale over ``axis``; ``scale`` spans those axes."""

    def __init__(self, axis=-1, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axis_list(self, axis)
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not epsilon >= 0:
            raise ValueError(f"Layer '{self.name}' (RMSNormalization): `epsilon` must be a non-negative float. "
                             f"Received: epsilon={epsilon!r}")
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        axes = _canonical_axes(self, self.axis, input_shape)
        shape = _known_sizes(self, axes, input_shape)
        self.scale = self.add_weight(shape, "ones", name="scale")
        self.input_spec = InputSpec(ndim=len(input_shape), axes=dict(zip(axes, shape)))
        self._axes = axes
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]  # as Keras's config
        self.built = True

    def call(self, inputs):
        return ops.rms_normalization(inputs, self.scale, self._axes, self.epsilon)

    def compute_output_shape(self, input_shape):
        _canonical_axes(self, self.axis, input_shape)
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}
