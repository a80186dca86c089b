"""ConvLSTM1D, ConvLSTM2D and ConvLSTM3D (channels_last): Keras 3's convolutional LSTM.

The LSTM of dlgpu/layers/recurrent.py with both of its matmuls replaced by convolutions, Keras's gate order
[i, f, c, o] kept along the filters:
    i, f, o = recurrent_activation(conv(x_t, W_*) + b_* + conv_same(h_{t-1}, U_*))
    c_t = f * c_{t-1} + i * activation(conv(x_t, W_c) + b_c + conv_same(h_{t-1}, U_c)),  h_t = o * activation(c_t)
on sequences (batch, time, *spatial, channels); the states h and c are (batch, *spatial_out, filters), where
spatial_out is what kernel_size, strides, padding and dilation_rate make of the input's spatial axes, and the
recurrent convolution (padding 'same', stride 1) keeps it.  kernel (*kernel_size, channels, 4 * filters),
recurrent_kernel (*kernel_size, filters, 4 * filters) and bias (4 * filters,), as Keras's; they belong to the
layer (conv_lstm2d/kernel), not to a cell, as LSTM's do here.

_RNN runs the steps, so masks, go_backwards, return_sequences, return_state, initial_state and stateful behave
as for LSTM.  Every step's input convolution is one convolution over (batch * time) images before the loop; each step
then convolves h once.  Dropout, as Keras's cell draws it: one mask per gate (four) over the step input and
four over h, drawn once per call.  The four masked copies go side by side in the channels, and a grouped
convolution (groups=4) gives each gate's filters its own copy: one convolution instead of four.
"""

from __future__ import annotations

import numpy as np

from dlgpu import activations, constraints, initializers, ops, regularizers
from dlgpu.layers.base import InputSpec, Layer, _is_shape
from dlgpu.layers.conv import check_data_format, dilated_output_length
from dlgpu.layers.core import _positive_int
from dlgpu.layers.recurrent import _RNN, _rate
from dlgpu.layers.regularization import check_seed
from dlgpu.ops.window import normalize_tuple


class _ConvLSTM(_RNN):
    """What ConvLSTM1D, ConvLSTM2D and ConvLSTM3D share; ``_rank`` is the number of spatial axes."""

    _rank = None
    _gates = 4
    _cell_scope = "conv_lstm_cell"
    _state_names = ("h", "c")

    # Keras's signature and defaults; the subclasses only set _rank
    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        self._init_sequence(return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask,
                            **kwargs)
        cls, owner = type(self).__name__, f"Layer '{self.name}'"
        rank = self._rank
        self.filters = _positive_int(cls, "filters", filters)
        self.kernel_size = normalize_tuple(kernel_size, rank, "kernel_size", owner)
        self.strides = normalize_tuple(strides, rank, "strides", owner)
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"{owner} ({cls}): padding must be 'valid' or 'same'; received padding={padding!r}")
        check_data_format(self, data_format)
        self.dilation_rate = normalize_tuple(dilation_rate, rank, "dilation_rate", owner)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{owner} ({cls}): Specifying `strides > 1` is not compatible with `dilation_rate > 1`. "
                             f"Please provide `strides=1` or `dilation_rate=1`. Received: strides={self.strides} "
                             f"and dilation_rate={self.dilation_rate}")
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = self._get_constraint("kernel_constraint", kernel_constraint)
        self.recurrent_constraint = self._get_constraint("recurrent_constraint", recurrent_constraint)
        self.bias_constraint = self._get_constraint("bias_constraint", bias_constraint)
        self.dropout = _rate(cls, "dropout", dropout)
        self.recurrent_dropout = _rate(cls, "recurrent_dropout", recurrent_dropout)
        self.seed = check_seed(self, seed)
        self._generators = {}
        self._state_shape = None  # (*spatial_out, filters), known once built
        self.input_spec = InputSpec(ndim=rank + 3)

    # -- shapes ----------------------------------------------------------------------------------
    def _check_sequences(self, shape):
        ndim = self._rank + 3
        if len(shape) != ndim:
            axes = ", ".join(["batch", "timesteps"] + [f"spatial_{i}" for i in range(self._rank)] + ["channels"])
            raise ValueError(f"Input 0 of layer '{self.name}' ({type(self).__name__}) is incompatible with the layer: "
                             f"expected ndim={ndim} ({axes}), found ndim={len(shape)}. Full shape received: "
                             f"{tuple(shape)}")

    def _spatial_output(self, input_shape):
        """The state's spatial shape for sequences of ``input_shape``; the spatial axes must be known."""
        spatial = tuple(input_shape[2:-1])
        if any(s is None for s in spatial):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) needs the spatial axes of its input to be "
                             f"known (the states' shape follows from them). Received input shape "
                             f"{tuple(input_shape)}")
        return tuple(dilated_output_length(size, k, self.padding, s, d, self.name)
                     for size, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate))

    def build(self, input_shape):
        if not _is_shape(input_shape):  # [sequences, *initial_states]
            input_shape = input_shape[0]
        self._check_sequences(input_shape)
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): the channel axis (last) of the input "
                             f"must be known; received input shape {tuple(input_shape)}")
        self._state_shape = self._spatial_output(input_shape) + (self.filters,)
        width = 4 * self.filters
        self.kernel = self.add_weight(self.kernel_size + (channels, width), self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight(self.kernel_size + (self.filters, width), self.recurrent_initializer,
                                                name="recurrent_kernel", regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint)
        self.bias = self.add_weight((width,), self._bias_initializer(), name="bias",
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None
        # the states' shape was fixed by these spatial axes: other sizes are refused, as in Keras
        axes = {2 + i: size for i, size in enumerate(input_shape[2:-1])}
        axes[-1] = channels
        self.input_spec = InputSpec(ndim=self._rank + 3, axes=axes)
        self._build_states(input_shape)
        self.built = True

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        filters, init = self.filters, self.bias_initializer

        def forget_gate_ones(shape, dtype=None):  # Keras: the forget gate's bias starts at 1
            parts = [init((filters,), dtype), np.ones((filters,), dtype), init((2 * filters,), dtype)]
            return np.concatenate([np.asarray(p) for p in parts])
        return forget_gate_ones

    def _output_size(self):
        return self.filters

    def _step_output_shape(self):
        return self._state_shape

    def _state_shapes(self):
        return [self._state_shape, self._state_shape]

    def compute_output_shape(self, input_shape):
        if not _is_shape(input_shape):
            input_shape = input_shape[0]
        self._check_sequences(input_shape)
        batch, steps = input_shape[0], input_shape[1]
        state = (batch,) + self._spatial_output(input_shape) + (self.filters,)
        output = (batch, steps) + state[1:] if self.return_sequences else state
        return [output, state, state] if self.return_state else output

    # -- the steps -------------------------------------------------------------------------------
    def _steps(self, x, xp, training, math=None):
        batch, steps = x.shape[:2]
        dtype = x.data.dtype
        input_masks = self._dropout_mask(xp, dtype, (batch,) + x.shape[2:], self.dropout, 4, training)
        state_masks = self._dropout_mask(xp, dtype, (batch,) + self._state_shape, self.recurrent_dropout, 4,
                                         training)
        if input_masks is not None:  # the same masks at every step: broadcast over the time axis
            x = _per_gate_copies(x, [ops.expand_dims(m, 1) for m in ops.unstack(input_masks, axis=0)])
        images = ops.reshape(x, (batch * steps,) + x.shape[2:])
        projected = ops.conv(images, self.kernel, self.strides, self.padding, dilation_rate=self.dilation_rate)
        if self.bias is not None:
            projected = ops.add(projected, self.bias)
        per_step = ops.unstack(ops.reshape(projected, (batch, steps) + projected.shape[1:]), axis=1)
        state_masks = None if state_masks is None else ops.unstack(state_masks, axis=0)
        kernel, ones = self.recurrent_kernel, (1,) * self._rank
        act, gate, filters = self.activation, self.recurrent_activation, self.filters

        def step(x_t, states):
            h, c = states
            h_in = h if state_masks is None else _per_gate_copies(h, state_masks)
            z = ops.add(x_t, ops.conv(h_in, kernel, ones, "same"))
            i, f, g, o = ops.unstack(ops.reshape(z, z.shape[:-1] + (4, filters)), axis=-2)
            c = ops.add(ops.multiply(gate(f), c), ops.multiply(gate(i), act(g)))
            h = ops.multiply(gate(o), act(c))
            return h, [h, c]
        return per_step, step

    # -- config ----------------------------------------------------------------------------------
    def get_config(self):
        return {**Layer.get_config(self), **self._sequence_config(),
                "filters": self.filters, "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": "channels_last", "dilation_rate": list(self.dilation_rate),
                "activation": activations.serialize(self.activation),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "unit_forget_bias": self.unit_forget_bias,
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout, "seed": self.seed}


def _per_gate_copies(x, masks):
    """x times each gate's mask, side by side in the channels: the input of a groups=4 convolution whose
    group g (channels g*C..(g+1)*C) meets the kernel's filters of gate g."""
    return ops.concatenate([ops.multiply(x, m) for m in masks], axis=-1)


class ConvLSTM1D(_ConvLSTM):
    """Convolutional LSTM over (batch, time, steps, channels) sequences."""

    _rank = 1


class ConvLSTM2D(_ConvLSTM):
    """Convolutional LSTM over (batch, time, rows, cols, channels) sequences, e.g. video frames."""

    _rank = 2


class ConvLSTM3D(_ConvLSTM):
    """Convolutional LSTM over (batch, time, depth, rows, cols, channels) sequences."""

    _rank = 3
