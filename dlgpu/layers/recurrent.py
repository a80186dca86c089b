"""SimpleRNN, LSTM and GRU with Keras 3's equations, weights and gate order, and Bidirectional.

Each layer runs its sequence as a Python loop over the time steps, built from differentiable ops, so the
tape differentiates it and it runs on CuPy unchanged:
- the input projection of every step is one matmul (inputs @ kernel + bias) before the loop;
- each step then does one matmul (state @ recurrent_kernel) and the gate arithmetic.
The steps are taken from the projection with ops.unstack, whose backward fills one buffer (slicing step
by step would cost O(steps^2) in the backward).  go_backwards walks that list of steps in reverse and, as
in Keras, returns the sequence in processing order (reversed).  With a (batch, steps) mask (Keras's masking:
Embedding(mask_zero=True), Masking, or mask=...) a masked step keeps every state and repeats the previous
output; without one the loop is the plain one above.

stateful=True (Keras's cross-batch statefulness): the final states of a call become the initial states of
the next, sample i of one batch continuing sample i of the previous.  They are kept in ``layer.states``,
variables made at build for the fixed batch size (the Input's batch_size / batch_shape) on the layer's
device, outside the layer's weights as in Keras 3: never trained, never saved.  Each call starts from a copy
and writes its final states back as plain values, so no gradient reaches across batches (truncated
backpropagation through time, one batch long).  reset_state() (alias reset_states()) sets them to zeros.

Keras keeps the weights in a cell (lstm/lstm_cell/kernel); here they belong to the layer (lstm/kernel),
with the same names, shapes, order and gate layout: kernel (input_dim, k*units), recurrent_kernel
(units, k*units), bias (k*units,) or, for GRU(reset_after=True), (2, 3*units) (input and recurrent
biases).  The k column blocks are [i, f, c, o] for LSTM and [z, r, h] for GRU.
"""

from __future__ import annotations

import numpy as np

from dlgpu import activations, constraints, initializers, ops, regularizers
from dlgpu.autograd import Tensor, Variable
from dlgpu.backend import device as _device
from dlgpu.layers.base import InputSpec, Layer, _is_shape, is_probing
from dlgpu.layers.core import _positive_int
from dlgpu.layers.masking import mask_array, on_device_of
from dlgpu.layers.regularization import check_seed
from dlgpu.ops._core import array_module
from dlgpu.ops.nn import dropout_mask, seeded_generator


def _rate(layer, name, value):
    if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool) or not 0 <= value < 1:
        raise ValueError(f"Received an invalid value for `{name}` of layer {layer}, expected a float in [0, 1). "
                         f"Received: {name}={value!r}")
    return float(value)


def _split_gates(kernel, gates):
    """A (rows, gates*units) kernel as (gates, rows, units): one block per gate, for a batched matmul."""
    rows, cols = kernel.shape
    return ops.transpose(ops.reshape(kernel, (rows, gates, cols // gates)), (1, 0, 2))


def _gate_matmul(h, kernel, mask, gates):
    """``h @ kernel`` as (batch, gates, units).  With recurrent dropout in an LSTM or GRU, Keras drops a
    different part of ``h`` for each gate: then ``mask`` is (gates, batch, units) and ``kernel`` comes
    already split by _split_gates, and the gates' products are one batched matmul."""
    if mask is None or mask.ndim == 2:
        product = ops.matmul(h if mask is None else ops.multiply(h, mask), kernel)
        return ops.reshape(product, (h.shape[0], gates, -1))
    return ops.transpose(ops.matmul(ops.multiply(mask, h), kernel), (1, 0, 2))


def _with_initial_state(args, kwargs):
    """The call's arguments with ``initial_state`` (popped from kwargs) joined to the inputs as
    [sequences, *states], as Keras's RNN does it: a functional graph then sees the states as inputs of the
    call (an encoder's states feeding a decoder) and saves that wiring."""
    initial_state = kwargs.pop("initial_state", None)
    if initial_state is None or not args:
        return args
    states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    return ([args[0], *states],) + tuple(args[1:])


class _GateMath:
    """The weights and the step math of SimpleRNN, LSTM and GRU, shared by those layers and by their cells
    (SimpleRNNCell, LSTMCell, GRUCell in dlgpu/layers/rnn.py), so that a cell computes exactly what its layer
    does.  A kind (the _*Math classes below) names its gates and states and writes one step."""

    _gates = 1                 # column blocks of `units` in the kernels
    _state_names = ("h",)      # the states, in order
    _gate_masks = False        # Keras (implementation 1): one dropout mask per gate when recurrent_dropout > 0

    def _init_math(self, units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                   kernel_regularizer, recurrent_regularizer, bias_regularizer, kernel_constraint,
                   recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed):
        cls = type(self).__name__
        self.units = _positive_int(cls, "units", units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = self._get_constraint("kernel_constraint", kernel_constraint)
        self.recurrent_constraint = self._get_constraint("recurrent_constraint", recurrent_constraint)
        self.bias_constraint = self._get_constraint("bias_constraint", bias_constraint)
        self.dropout = _rate(cls, "dropout", dropout)
        self.recurrent_dropout = _rate(cls, "recurrent_dropout", recurrent_dropout)
        self.seed = check_seed(self, seed)  # with a seed, the masks come from the layer's own generator
        self._generators = {}

    def _math_config(self):
        return {"units": self.units, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout, "seed": self.seed}

    # -- weights ---------------------------------------------------------------------------------
    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def _build_weights(self, features):
        if features is None:
            raise ValueError(f"Layer '{self.name}': the last axis (features) of the input must be known")
        width = self._gates * self.units
        self.kernel = self.add_weight((features, width), self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight((self.units, width), self.recurrent_initializer,
                                                name="recurrent_kernel", regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint)
        self.bias = self.add_weight(self._bias_shape(), self._bias_initializer(), name="bias",
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None

    # -- one call's pieces -----------------------------------------------------------------------
    def _input_bias(self):
        return self.bias

    def _project_inputs(self, x, mask):
        """Every step's ``x_t @ kernel + bias`` at once, as (batch, steps, gates, units)."""
        batch, steps, _ = x.shape
        if mask is None or mask.ndim == 2:
            if mask is not None:  # one (batch, features) mask for every step, as Keras draws it
                x = ops.multiply(x, ops.expand_dims(mask, 1))
            projected = ops.dense(x, self.kernel, self._input_bias())
        else:  # one mask per gate, (gates, batch, features): a batched matmul gives (gates, batch, steps, units)
            dropped = ops.multiply(ops.expand_dims(mask, 2), x)
            kernels = ops.expand_dims(_split_gates(self.kernel, self._gates), 1)  # (gates, 1, features, units)
            projected = ops.transpose(ops.matmul(dropped, kernels), (1, 2, 0, 3))
            projected = ops.reshape(projected, (batch, steps, -1))
            if self._input_bias() is not None:
                projected = ops.add(projected, self._input_bias())
        return ops.reshape(projected, (batch, steps, self._gates, self.units))

    def _dropout_masks(self, xp, dtype, batch, features, training):
        """(input mask, state mask) for one call: None outside training; else the masks Keras draws once per
        call and uses at every step, one per gate stacked when each gate gets its own."""
        count = self._gates if self._gate_masks and self.recurrent_dropout > 0 else None
        return (self._dropout_mask(xp, dtype, (batch, features), self.dropout, count, training),
                self._dropout_mask(xp, dtype, (batch, self.units), self.recurrent_dropout, count, training))

    def _dropout_mask(self, xp, dtype, shape, rate, count, training):
        if not training or rate == 0:
            return None
        full = shape if count is None else (count,) + shape
        generator = seeded_generator(self._generators, self.seed, xp)
        return Tensor(dropout_mask(xp.empty(full, dtype), rate, generator=generator), dtype=dtype)

    def _step_function(self, state_mask):
        """A function (x_t, states) -> new states (the output first) for one call; x_t is (batch, gates,
        units).  Built per call, so weights reshaped for the step are reshaped once, not once per step."""
        raise NotImplementedError


class _SimpleRNNMath(_GateMath):
    """h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)."""

    def _step_function(self, state_mask):
        kernel, activation = self.recurrent_kernel, self.activation

        def step(x_t, states):
            h = states[0]
            return [activation(ops.reshape(ops.add(x_t, _gate_matmul(h, kernel, state_mask, 1)), h.shape))]
        return step


class _LSTMMath(_GateMath):
    """Long short-term memory, Keras's gate order [i, f, c, o]:
    i, f, o = recurrent_activation(...), c_t = f * c_{t-1} + i * activation(x_t W_c + h_{t-1} U_c + b_c),
    h_t = o * activation(c_t).  The states are [h, c]."""

    _gates = 4
    _state_names = ("h", "c")
    _gate_masks = True

    def _init_kind(self, recurrent_activation, unit_forget_bias):
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _kind_config(self):
        return {"recurrent_activation": activations.serialize(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias}

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        units, init = self.units, self.bias_initializer

        def forget_gate_ones(shape, dtype=None):  # Keras: the forget gate's bias starts at 1
            parts = [init((units,), dtype), np.ones((units,), dtype), init((2 * units,), dtype)]
            return np.concatenate([np.asarray(p) for p in parts])
        return forget_gate_ones

    def _step_function(self, state_mask):
        kernel = self.recurrent_kernel if state_mask is None or state_mask.ndim == 2 else \
            _split_gates(self.recurrent_kernel, 4)
        act, gate = self.activation, self.recurrent_activation

        def step(x_t, states):
            h, c = states
            i, f, g, o = ops.unstack(ops.add(x_t, _gate_matmul(h, kernel, state_mask, 4)), axis=1)
            c = ops.add(ops.multiply(gate(f), c), ops.multiply(gate(i), act(g)))
            return [ops.multiply(gate(o), act(c)), c]
        return step


class _GRUMath(_GateMath):
    """Gated recurrent unit, Keras's gate order [z, r, h]:
    z, r = recurrent_activation(x_t W + h_{t-1} U + b) for their blocks, h_t = z * h_{t-1} + (1 - z) * hh with
    reset_after=True (Keras's default, cuDNN's and torch's): hh = activation(x_t W_h + b_h + r * (h_{t-1} U_h + b'_h))
    and a bias of shape (2, 3*units), input biases then recurrent biases;
    reset_after=False: hh = activation(x_t W_h + b_h + (r * h_{t-1}) U_h), one bias of shape (3*units,)."""

    _gates = 3
    _gate_masks = True

    def _init_kind(self, recurrent_activation, reset_after):
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def _kind_config(self):
        return {"recurrent_activation": activations.serialize(self.recurrent_activation),
                "reset_after": self.reset_after}

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _input_bias(self):
        if self.bias is None or not self.reset_after:
            return self.bias
        return self.bias[0]

    def _step_function(self, state_mask):
        act, gate, units = self.activation, self.recurrent_activation, self.units
        per_gate = state_mask is not None and state_mask.ndim == 3
        if self.reset_after:
            kernel = _split_gates(self.recurrent_kernel, 3) if per_gate else self.recurrent_kernel
            recurrent_bias = None if self.bias is None else ops.reshape(self.bias[1], (3, units))

            def step(x_t, states):
                h = states[0]
                inner = _gate_matmul(h, kernel, state_mask, 3)
                if recurrent_bias is not None:
                    inner = ops.add(inner, recurrent_bias)
                x_z, x_r, x_h = ops.unstack(x_t, axis=1)
                h_z, h_r, h_h = ops.unstack(inner, axis=1)
                z = gate(ops.add(x_z, h_z))
                r = gate(ops.add(x_r, h_r))
                hh = act(ops.add(x_h, ops.multiply(r, h_h)))
                return [_mix(z, h, hh)]
            return step

        # reset_after=False: the reset gate scales h before its matmul, so the h block is a second matmul
        kernel_zr, kernel_h = self.recurrent_kernel[:, :2 * units], self.recurrent_kernel[:, 2 * units:]
        if per_gate:
            kernel_zr = _split_gates(kernel_zr, 2)
        mask_zr = None if state_mask is None else (state_mask[:2] if per_gate else state_mask)
        mask_h = None if state_mask is None else (state_mask[2] if per_gate else state_mask)

        def step(x_t, states):
            h = states[0]
            x_z, x_r, x_h = ops.unstack(x_t, axis=1)
            h_z, h_r = ops.unstack(_gate_matmul(h, kernel_zr, mask_zr, 2), axis=1)
            z = gate(ops.add(x_z, h_z))
            r = gate(ops.add(x_r, h_r))
            dropped = h if mask_h is None else ops.multiply(h, mask_h)
            hh = act(ops.add(x_h, ops.matmul(ops.multiply(r, dropped), kernel_h)))
            return [_mix(z, h, hh)]
        return step


def _mix(z, h, hh):
    """z * h + (1 - z) * hh, written as hh + z * (h - hh): three ops instead of four."""
    return ops.add(hh, ops.multiply(z, ops.subtract(h, hh)))


class _RNN(_GateMath, Layer):
    """What SimpleRNN, LSTM and GRU (and RNN, dlgpu/layers/rnn.py) share: the sequence arguments, initial
    states, the loop over the steps, masking, the outputs and the config.  The step math comes from the
    kind's _*Math class (for RNN, from its cell)."""

    # Keras keeps a recurrent layer's weights in a cell sublayer of this name (lstm/lstm_cell/kernel); the
    # weights here get the same paths
    _cell_scope = None

    def add_weight(self, *args, **kwargs):
        variable = super().add_weight(*args, **kwargs)
        if self._cell_scope:
            head, _, name = variable.path.rpartition("/")
            variable.path = f"{head}/{self._cell_scope}/{name}"
        return variable

    def __init__(self, units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                 kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer,
                 kernel_constraint, recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed,
                 return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask=False,
                 use_cudnn="auto", implementation=None, **kwargs):
        self._init_sequence(return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask,
                            **kwargs)
        self._init_math(units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                        kernel_regularizer, recurrent_regularizer, bias_regularizer, kernel_constraint,
                        recurrent_constraint, bias_constraint, dropout, recurrent_dropout, seed)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"Layer '{self.name}': use_cudnn must be 'auto', True or False; received {use_cudnn!r}")

    def _init_sequence(self, return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask,
                       **kwargs):
        Layer.__init__(self, **kwargs)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.states = None  # with stateful=True, the kept states (variables), made by build
        self.unroll = bool(unroll)  # the loop below is unrolled either way
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.input_spec = InputSpec(ndim=3)

    def build(self, input_shape):
        if not _is_shape(input_shape):  # [sequences, *initial_states]
            input_shape = input_shape[0]
        self._check_sequences(input_shape)
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"Layer '{self.name}': the last axis (features) of the input must be known; "
                             f"received input shape {tuple(input_shape)}")
        self._build_weights(features)
        self.input_spec = InputSpec(ndim=3, axes={-1: features})
        self._build_states(input_shape)
        self.built = True

    def _check_sequences(self, shape):
        if len(shape) != 3:
            raise ValueError(f"Input 0 of layer '{self.name}' ({type(self).__name__}) is incompatible with the layer: "
                             f"expected ndim=3 (batch, timesteps, features), found ndim={len(shape)}. Full shape "
                             f"received: {tuple(shape)}")

    # -- calling ---------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return Layer.__call__(self, *_with_initial_state(args, kwargs), **kwargs)

    def call(self, inputs, initial_state=None, mask=None, training=None):
        if isinstance(mask, (list, tuple)):  # [sequences, *initial_states] carry one mask each: the first counts
            mask = mask[0]
        if isinstance(inputs, (list, tuple)):
            inputs, *states = inputs
            initial_state = states or initial_state
            self._check_sequences(inputs.shape)
        x = inputs
        batch, steps = x.shape[:2]  # then features, or (ConvLSTM) the spatial axes and channels
        if steps == 0:
            raise ValueError(f"Layer '{self.name}': the input has no time steps (shape {x.shape})")
        xp = array_module(x.data)
        keeps_states = self.stateful and not is_probing()
        if keeps_states:
            if self.states is None:  # stateful switched on after build
                self._build_states((batch,))
            self._check_state_batch(batch)
            if initial_state is None:
                initial_state = self._stored_states(x.data)
        states = self._initial_states(initial_state, batch, xp, x.data.dtype)
        keep = None if mask is None else mask_array(self, mask, (batch, steps))
        per_step, step = self._steps(x, xp, training)
        if self.go_backwards:
            per_step.reverse()
        if keep is None:
            outputs = []
            for x_t in per_step:
                output, states = step(x_t, states)
                if self.return_sequences:
                    outputs.append(output)
            last = output
        else:
            last, outputs, states = self._masked_loop(step, per_step, states, keep, xp, x.data.dtype)
        output = ops.stack(outputs, axis=1) if self.return_sequences else last
        if keeps_states:  # copied in as values: the next batch's gradients stop here
            for variable, state in zip(self.states, states):
                variable.assign(state.data)
        # Layer.__call__ adds the activity penalty of every output, the states too, as Keras's Layer does
        return [output, *states] if self.return_state else output

    # -- stateful=True ---------------------------------------------------------------------------
    def _build_states(self, input_shape):
        """Keras's RNN.build: a stateful layer's states are made once, for the batch size of the input shape
        (zeros, or a cell's get_initial_state), on the layer's device; building again resets them."""
        if not self.stateful:
            return
        if self.states is not None:
            self.reset_state()
            return
        batch = input_shape[0]
        if batch is None:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): When using `stateful=True` in a RNN, "
                             f"the batch size must be static. Found dynamic batch size: "
                             f"sequence.shape={tuple(input_shape)}. Give the model's Input a batch size: "
                             f"Input(shape=..., batch_size=...) or Input(batch_shape=...).")
        placement = self._placement()
        initial = self._initial_states(None, int(batch), placement.xp, np.dtype(self.dtype))
        states = []
        with _device.device(placement):
            for state in initial:
                data = state.data if isinstance(state, Tensor) else np.asarray(state)
                variable = Variable(_device.to_device(data, placement), dtype=self.dtype, trainable=False,
                                    name="rnn_state")
                variable.path = f"{self.name}/rnn_state"
                states.append(variable)
        # past Layer.__setattr__, which would track them as weights: Keras 3 neither trains nor saves them
        object.__setattr__(self, "states", states)

    def reset_state(self):
        """Keras: the kept states back to zeros (a layer that is not stateful has none: nothing to do)."""
        if self.states is not None:
            for variable in self.states:
                variable.assign(0.0)

    def reset_states(self):
        """Keras's compatibility alias of reset_state()."""
        self.reset_state()

    def _check_state_batch(self, batch):
        expected = self.states[0].shape[0]
        if batch != expected:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): If an RNN is stateful, the batch size "
                             f"of the input sequences must be the same as the batch size of the initial state. \n"
                             f"- Expected batch size: {expected}\n- Received batch size: {batch}\n"
                             f"(a stateful layer keeps one state per sample of the batch it was built for; with "
                             f"fit, evaluate or predict give batch_size={expected} and a number of samples it "
                             f"divides)")

    def _stored_states(self, like):
        """Copies of the kept states where ``like`` (the input) lives: the tape then holds the copies, which
        the write-back at the end of the call leaves alone.  States left on another device (the layer's
        inputs moved) move there once."""
        copies = []
        for variable in self.states:
            if _device.foreign_device(variable.data, like) is not None:
                variable.data = _device.to_device(variable.data, _device.device_of_array(like))
            copies.append(Tensor(variable.data.copy()))
        return copies

    def _steps(self, x, xp, training, math=None):
        """The per-step inputs (every step's input projection, taken apart with ops.unstack) and a function
        (x_t, states) -> (output, new states) running ``math``'s step (this layer's, or a built-in cell's)."""
        math = self if math is None else math
        input_mask, state_mask = math._dropout_masks(xp, x.data.dtype, x.shape[0], x.shape[2], training)
        per_step = ops.unstack(math._project_inputs(x, input_mask), axis=1)  # (batch, gates, units) each
        inner = math._step_function(state_mask)

        def step(x_t, states):
            new = inner(x_t, states)
            return new[0], new
        return per_step, step

    def _output_size(self):
        return self.units

    def _step_output_shape(self):
        """The shape of one step's output without the batch axis."""
        return (self._output_size(),)

    def _masked_loop(self, step, per_step, states, keep, xp, dtype):
        """The loop with a (batch, steps) mask, as Keras's backend rnn: at a masked step every state keeps
        its previous value and the output repeats the previous output (zeros before the first step), or
        is zero with zero_output_for_mask.  A step no sample uses is skipped, and one every sample uses
        takes the plain update, so only steps where the padding differs pay for the selects."""
        keep = on_device_of(keep, per_step[0].data)
        if self.go_backwards:
            keep = keep[:, ::-1]
        used = _device.to_numpy(keep.any(axis=0))  # one transfer per call, not one per step
        full = _device.to_numpy(keep.all(axis=0))
        zeros = Tensor(xp.zeros((keep.shape[0],) + tuple(self._step_output_shape()), dtype))
        previous, outputs = zeros, []
        for t, x_t in enumerate(per_step):
            if not used[t]:
                out = zeros if self.zero_output_for_mask else previous
            else:
                new_out, new = step(x_t, states)
                if full[t]:
                    states, out = new, new_out
                else:
                    k = Tensor(keep[:, t:t + 1])
                    states = [ops.where(_broadcast_keep(k, n), n, s) for n, s in zip(new, states)]
                    out = ops.where(_broadcast_keep(k, new_out), new_out,
                                    zeros if self.zero_output_for_mask else previous)
            previous = out
            if self.return_sequences:
                outputs.append(out)
        return previous, outputs, states

    def _state_shapes(self):
        """The shape of each state without the batch axis."""
        return [(self.units,) for _ in self._state_names]

    def _initial_states(self, initial_state, batch, xp, dtype):
        names, shapes = self._state_names, self._state_shapes()
        if initial_state is None:
            return [Tensor(xp.zeros((batch,) + shape, dtype)) for shape in shapes]
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != len(names):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) expects {len(names)} initial state "
                             f"tensor(s) ({', '.join(names)}) but received {len(states)}")
        states = [self._convert_input(s) for s in states]
        for name, shape, s in zip(names, shapes, states):
            if tuple(s.shape) != (batch,) + shape:
                raise ValueError(f"Layer '{self.name}': initial state {name} must have shape (batch, ...) = "
                                 f"{(batch,) + shape}; received {tuple(s.shape)}")
        return states

    # -- shapes and config -----------------------------------------------------------------------
    def compute_mask(self, inputs, mask=None):
        """Keras: the input's mask goes on with the sequence output; a last output and states have none."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None for _ in self._state_names]
        return output_mask

    def compute_output_shape(self, input_shape):
        if not _is_shape(input_shape):
            input_shape = input_shape[0]
        self._check_sequences(input_shape)
        batch, steps = input_shape[0], input_shape[1]
        size = self._output_size()
        output = (batch, steps, size) if self.return_sequences else (batch, size)
        if self.return_state:
            return [output] + [(batch,) + shape for shape in self._state_shapes()]
        return output

    def _sequence_config(self):
        return {"return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask}

    def get_config(self):
        return {**Layer.get_config(self), **self._math_config(),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                **self._sequence_config()}


def _broadcast_keep(keep, value):
    """The (batch, 1) step mask shaped to select over ``value`` (a state of any rank)."""
    if value.ndim == 2:
        return keep
    return ops.reshape(keep, (keep.shape[0],) + (1,) * (value.ndim - 1))


class SimpleRNN(_SimpleRNNMath, _RNN):
    """h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)."""

    _cell_scope = "simple_rnn_cell"

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, seed=None, **kwargs):
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                         kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
                         seed, return_sequences, return_state, go_backwards, stateful, unroll, **kwargs)


class LSTM(_LSTMMath, _RNN):
    """The LSTM equations of _LSTMMath over a sequence.  return_state gives [output, h, c]."""

    _cell_scope = "lstm_cell"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False,
                 **kwargs):
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                         kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
                         seed, return_sequences, return_state, go_backwards, stateful, unroll, **kwargs)
        self._init_kind(recurrent_activation, unit_forget_bias)

    def get_config(self):
        return {**super().get_config(), **self._kind_config()}


class GRU(_GRUMath, _RNN):
    """The GRU equations of _GRUMath over a sequence."""

    _cell_scope = "gru_cell"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, reset_after=True, **kwargs):
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer, bias_initializer,
                         kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
                         seed, return_sequences, return_state, go_backwards, stateful, unroll, **kwargs)
        self._init_kind(recurrent_activation, reset_after)

    def get_config(self):
        return {**super().get_config(), **self._kind_config()}


class Bidirectional(Layer):
    """Runs a copy of ``layer`` forwards and another backwards over the sequence and merges their outputs
    (concat, sum, mul, ave, or None for both).  The backward output sequence is flipped back to the input's
    time order before merging, as in Keras.  Weights: the forward layer's, then the backward layer's."""

    _MERGE_MODES = ("concat", "sum", "mul", "ave", None)

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if not isinstance(layer, _RNN):
            raise ValueError(f"Bidirectional wraps a recurrent layer (SimpleRNN, LSTM, GRU); received {layer!r}")
        if backward_layer is not None and not isinstance(backward_layer, _RNN):
            raise ValueError(f"Bidirectional: backward_layer must be a recurrent layer; received {backward_layer!r}")
        if merge_mode not in self._MERGE_MODES:
            raise ValueError(f"Bidirectional: invalid merge_mode {merge_mode!r}; expected one of {self._MERGE_MODES}")
        super().__init__(**kwargs)
        # Fresh layers from the wrapped one's config, so that no weights or state carry over (as Keras does).
        config = layer.get_config()
        config["name"] = "forward_" + _remove_prefix(layer.name, "forward_")
        self.forward_layer = type(layer).from_config(config)
        if backward_layer is None:
            config = layer.get_config()
            config["go_backwards"] = True
            config["name"] = "backward_" + _remove_prefix(layer.name, "backward_")
            backward_layer = type(layer).from_config(config)
        self.backward_layer = backward_layer
        if self.forward_layer.go_backwards == self.backward_layer.go_backwards:
            raise ValueError(f"Layer '{self.name}': the forward and backward layers must have different go_backwards; "
                             f"both have go_backwards={self.forward_layer.go_backwards}")
        for attribute in ("stateful", "return_sequences", "return_state"):
            forward, backward = getattr(self.forward_layer, attribute), getattr(self.backward_layer, attribute)
            if forward != backward:
                raise ValueError(f"Layer '{self.name}': the forward and backward layers must have the same "
                                 f"{attribute}; received {forward} and {backward}")
        # Keras: with return_sequences, masked steps of both directions output zeros, so that after the
        # backward sequence is flipped back the padding lines up with zeros on both halves
        for sub in (self.forward_layer, self.backward_layer):
            sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state
        self.stateful = self.forward_layer.stateful
        self._initial_weights = weights
        # a ConvLSTM's sequences have more axes than (batch, timesteps, features)
        self.input_spec = InputSpec(ndim=self.forward_layer.input_spec.ndim)

    def __call__(self, *args, **kwargs):
        return Layer.__call__(self, *_with_initial_state(args, kwargs), **kwargs)

    @property
    def states(self):
        """Keras: the kept states of a stateful pair, the forward layer's then the backward layer's."""
        if self.forward_layer.states and self.backward_layer.states:
            return tuple(self.forward_layer.states + self.backward_layer.states)
        return None

    def reset_state(self):
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def reset_states(self):
        """Keras's compatibility alias of reset_state()."""
        self.reset_state()

    def build(self, input_shape):
        sequences = input_shape if _is_shape(input_shape) else input_shape[0]
        self.forward_layer._maybe_build(sequences)
        self.backward_layer._maybe_build(sequences)
        self.built = True
        if self._initial_weights:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def call(self, inputs, initial_state=None, mask=None, training=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if isinstance(inputs, (list, tuple)):
            inputs, *states = inputs
            initial_state = states or initial_state
        forward_state = backward_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            forward_state, backward_state = list(initial_state[:half]), list(initial_state[half:])
        y = self.forward_layer(inputs, initial_state=forward_state, mask=mask, training=training)
        y_rev = self.backward_layer(inputs, initial_state=backward_state, mask=mask, training=training)
        states = []
        if self.return_state:
            states = y[1:] + y_rev[1:]
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = ops.flip(y_rev, axis=1)
        if self.merge_mode == "concat":
            output = [ops.concatenate([y, y_rev], axis=-1)]
        elif self.merge_mode == "sum":
            output = [ops.add(y, y_rev)]
        elif self.merge_mode == "ave":
            output = [ops.multiply(ops.add(y, y_rev), 0.5)]
        elif self.merge_mode == "mul":
            output = [ops.multiply(y, y_rev)]
        else:
            output = [y, y_rev]
        if len(output) == 1 and not states:
            return output[0]
        return output + states

    def compute_mask(self, inputs, mask=None):
        """Keras: the sequence outputs keep the input's mask (one per output with merge_mode=None)."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if self.return_sequences:
            output_mask = [mask, mask] if self.merge_mode is None else [mask]
        else:
            output_mask = [None, None] if self.merge_mode is None else [None]
        if self.return_state:
            output_mask += [None] * (2 * len(self.forward_layer._state_names))
        return output_mask if len(output_mask) > 1 else output_mask[0]

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], shape[1:]
        if self.merge_mode == "concat":
            output = [shape[:-1] + (2 * shape[-1],)]
        elif self.merge_mode is None:
            output = [shape, shape]
        else:
            output = [shape]
        if len(output) == 1 and not states:
            return output[0]
        return output + states + states

    def get_config(self):
        from dlgpu import layers
        return {**super().get_config(), "merge_mode": self.merge_mode,
                "layer": layers.serialize(self.forward_layer),
                "backward_layer": layers.serialize(self.backward_layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from dlgpu import layers
        config = dict(config)
        config["layer"] = layers.deserialize(config["layer"], custom_objects)
        if config.get("backward_layer") is not None:
            config["backward_layer"] = layers.deserialize(config["backward_layer"], custom_objects)
        return cls(**config)


def _remove_prefix(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name
