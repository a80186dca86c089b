"""A training step without the tape, for the Sequential models whose every layer has a known backward.

The tape records every op as it runs and walks the graph back afterwards; for a small model the Python
around each primitive costs as much as the primitive (the seed MLP, batch 128: ~375 us of a 1.4 ms step
on a 2-core CPU, 2026-11-23).  Keras compiles its train step for the same reason (``jit_compile``).
Here a Sequential of Dense, Conv2D, MaxPooling2D, Flatten and Dropout layers, trained with a softmax
cross-entropy, is planned once into a list of (forward, backward) primitive pairs: the step calls the
backend primitives directly, keeps each forward's context for its backward, and hands the gradients to
the optimizer.  It computes what the taped step computes (tests/models/test_static_step.py holds the
two side by side); any model, loss or input outside that list takes the taped step, as does
``compile(run_eagerly=True)`` or ``compile(jit_compile=False)``.

The stages call the primitives of the device the weights live on (dlgpu/backend/cpu/ or gpu.py, the
same names), so the step serves the GPU too, where the tape's Python per op is most of a small model's
step (the seed CNN on an H100: ~0.5 ms of GPU work in a 1.8 ms taped step, 2026-11-23).  Two things are
CPU-only: the fused Conv2D + MaxPooling2D stage (the GPU runs the two primitives) and writing the dense
gradients straight into Adam's packed buffer (CPU Adam packs; the GPU's update is one fused launch).
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.backend import cpu
from dlgpu.backend import device as _device


class StaticStep:
    """The planned step of one model (the trainer re-plans when the model's layers, trainability,
    optimizer or loss change)."""

    def __init__(self, model, stages, variables, sparse_labels, backend):
        self._optimizer = model.optimizer
        self._backend = backend
        self._array_type = type(variables[0].data)  # numpy or CuPy: batches on another device take the tape
        self._stages = stages
        self._variables = variables
        self._sparse = sparse_labels
        self._input_shape = tuple(model._build_shapes[1:])
        self._classes = stages[-1].units

    def accepts(self, x, y, sample_weight):
        """Whether this batch can take the planned step; anything else takes the taped step, which also
        reports whatever is wrong with it."""
        if sample_weight is not None or not (isinstance(x, Tensor) and isinstance(y, Tensor)):
            return False
        x, y = x.data, y.data
        if type(x) is not self._array_type or type(y) is not self._array_type or x.shape[1:] != self._input_shape \
                or x.dtype.kind not in "fiub" or len(x) == 0:
            return False
        if self._sparse:
            return y.shape in ((len(x),), (len(x), 1)) and y.dtype.kind in "fiub"
        return y.shape == (len(x), self._classes) and y.dtype.kind == "f"

    def __call__(self, x, y):
        """One step; returns (loss, y_pred) as the taped step's Tensors."""
        backend = self._backend
        h = x.data if x.data.dtype == np.float32 else x.data.astype(np.float32)
        labels = self._labels(y, (len(h), self._classes))
        contexts = []
        for stage in self._stages:
            h, ctx = stage.forward(h)
            contexts.append(ctx)
        per_sample, probs = backend.softmax_cross_entropy(h, labels)
        n = per_sample.shape[0]
        scale = np.float32(1.0 / n)
        loss = per_sample.sum(dtype=np.float32) * scale  # sum_over_batch_size, as the Loss reduces
        if self._sparse and backend is cpu:  # the backward for a uniform upstream 1/n, without its broadcast
            grad = probs * scale
            grad[np.arange(n), labels] -= scale
        else:  # on the GPU one fused kernel
            upstream = _device.device_of_array(probs).xp.full(n, scale, np.float32)
            grad = backend.softmax_cross_entropy_backward(upstream, probs, labels)
        grads = []
        # Gradients go straight where the optimizer reads them (Adam's packed buffer): no gather copy.
        destinations = self._optimizer._gradient_destinations(self._variables)
        end = len(destinations)
        for index in range(len(self._stages) - 1, -1, -1):
            stage = self._stages[index]
            begin = end - len(stage.variables)
            grad, stage_grads = stage.backward(grad, contexts[index], index > 0, destinations[begin:end])
            grads[:0] = stage_grads
            end = begin
        self._optimizer.apply(grads, self._variables)
        return Tensor(loss if backend is not cpu else np.asarray(loss, np.float32)), Tensor(probs)

    def _labels(self, y, pred_shape):
        labels = y.data
        if not self._sparse:
            return labels if labels.dtype == np.float32 else labels.astype(np.float32)
        if labels.ndim == 2:
            labels = labels[:, 0]
        if labels.dtype.kind in "iu" and labels.min() >= 0 and labels.max() < pred_shape[1]:
            return labels  # the common case, checked with two reductions instead of sparse_labels' masks
        from dlgpu.losses import sparse_labels  # converts float ids, or raises the taped step's error
        return sparse_labels(labels, pred_shape[1], "sparse_categorical_crossentropy", pred_shape)


# -- planning -------------------------------------------------------------------------------------

def plan(model):
    """The StaticStep for ``model``, or None when something in it needs the tape."""
    from dlgpu.models.sequential import Sequential
    if type(model) is not Sequential or not model.built or not model.trainable or model._build_shapes is None:
        return None
    if getattr(model, "_run_eagerly", False) or getattr(model, "_jit_compile", "auto") is False:
        return None
    if len(model._loss_fns or ()) != 1 or model._loss_weights is not None:
        return None
    loss_fn = model._loss_fns[0]
    loss = _loss_kind(loss_fn)
    if loss is None:
        return None
    sparse, from_logits = loss
    layers = list(model._stack)
    if any(getattr(layer, "_remat_mode", None) is not None for layer in [model, *layers]):
        return None  # made in a RematScope: the taped step rematerializes; this one would keep every activation
    weights = model.trainable_variables
    if not weights or any(type(v.data) is not type(weights[0].data) for v in weights):
        return None
    backend = weights[0].device.backend
    stages, variables = [], []
    i = 0
    while i < len(layers):
        layer = layers[i]
        following = layers[i + 1] if i + 1 < len(layers) else None
        is_last = following is None
        stage = _stage(layer, following, is_last, from_logits, backend)
        if stage is None:
            return None
        stages.append(stage)
        variables += stage.variables
        i += stage.layers_used
    outputs = getattr(model, "outputs", None)
    if not isinstance(stages[-1], _DenseStage) or not outputs or len(outputs[0].shape) != 2:
        return None  # the cross-entropy runs on (batch, classes) logits
    return StaticStep(model, stages, variables, sparse, backend)


def _loss_kind(loss_fn):
    """(sparse, from_logits) for a softmax cross-entropy the step can compute, else None."""
    from dlgpu import losses
    if getattr(loss_fn, "reduction", None) != "sum_over_batch_size":
        return None
    if type(loss_fn) is losses.SparseCategoricalCrossentropy and loss_fn.ignore_class is None:
        return True, bool(loss_fn.from_logits)
    if type(loss_fn) is losses.CategoricalCrossentropy and not loss_fn.label_smoothing and loss_fn.axis in (-1,):
        return False, bool(loss_fn.from_logits)
    return None


def _plain(layer):
    """Trainable, float32, no penalties: what the step reproduces exactly.  Weight constraints are no
    obstacle: the step hands its gradients to optimizer.apply, which applies them after the update.
    A layer that computes in another dtype (mixed_float16's float16) takes the tape: the stages run the
    float32 primitives on the float32 weights."""
    return (layer.built and layer.trainable and layer.dtype == "float32" and layer.compute_dtype == "float32"
            and layer.quantization_mode is None
            and getattr(layer, "activity_regularizer", None) is None
            and getattr(layer, "kernel_regularizer", None) is None and getattr(layer, "bias_regularizer", None) is None)


def _stage(layer, following, is_last, from_logits, backend):
    from dlgpu import activations
    from dlgpu.layers.conv import Conv2D
    from dlgpu.layers.core import Dense, Dropout, Flatten
    from dlgpu.layers.pooling import MaxPooling2D
    from dlgpu.models import fusion
    if not _plain(layer):
        return None
    kind = type(layer)
    if kind is Dense:
        if is_last:
            softmax = layer.activation is activations.softmax
            if not (softmax or (from_logits and layer._fused == "linear")):
                return None
            return _DenseStage(layer, backend, "linear")
        return _DenseStage(layer, backend, layer._fused) if layer._fused is not None else None
    if kind is Conv2D and layer._fused is not None and not is_last:
        if backend is cpu and following is not None and _plain(following) and fusion.fusable(layer, following) \
                and layer._fused in cpu.POOL_FUSABLE_ACTIVATIONS:
            return _ConvPoolStage(layer, backend)
        return _ConvStage(layer, backend)
    if kind is MaxPooling2D:
        return _MaxPoolStage(layer, backend)
    if kind is Flatten:
        return _FlattenStage()
    if kind is Dropout and layer.rate < 1:
        return _DropoutStage(layer)
    return None


class _Stage:
    layers_used = 1
    variables = ()


class _KernelBiasStage(_Stage):
    """Dense and Conv2D: a kernel and maybe a bias, whose backward primitive returns (dx, dW, db).  Dense
    writes dW and db straight into the arrays the optimizer reads them from (``destinations``)."""
    backward_primitive = None

    def __init__(self, layer, backend):
        self.layer = layer
        self.backend = backend
        self.variables = [layer.kernel] + ([layer.bias] if layer.bias is not None else [])

    def _bias(self):
        return None if self.layer.bias is None else self.layer.bias.data

    def backward(self, g, ctx, need_dx, destinations):
        dx, dw, db = self._backward(g, ctx, need_dx, destinations)
        return dx, [dw] if db is None else [dw, db]

    def _backward(self, g, ctx, need_dx, destinations):
        return getattr(self.backend, self.backward_primitive)(g, ctx, need_dx=need_dx)


class _DenseStage(_KernelBiasStage):
    backward_primitive = "dense_backward"

    def __init__(self, layer, backend, activation):
        super().__init__(layer, backend)
        self.activation = activation
        self.units = layer.units

    def forward(self, h):
        return self.backend.dense_forward(h, self.layer.kernel.data, self._bias(), self.activation)

    def _backward(self, g, ctx, need_dx, destinations):
        if self.backend is cpu:
            return cpu.dense_backward(g, ctx, need_dx=need_dx, out=(destinations + [None])[:2])
        return super()._backward(g, ctx, need_dx, destinations)


class _ConvStage(_KernelBiasStage):
    backward_primitive = "conv2d_backward"

    def _pads(self, h):
        from dlgpu.ops.conv import resolve_padding
        return resolve_padding(self.layer.padding, h.shape[1:3], self.layer.kernel_size, self.layer.strides)

    def forward(self, h):
        return self.backend.conv2d_forward(h, self.layer.kernel.data, self._bias(), self.layer.strides,
                                           self._pads(h), self.layer._fused)


class _ConvPoolStage(_ConvStage):
    """Conv2D then a 2x2 MaxPooling2D, as fusion.run_conv_pool computes them.  The layers were built
    for the input shape the step accepts, so the convolution output holds at least one 2x2 window."""
    layers_used = 2
    backward_primitive = "conv2d_maxpool_backward"

    def forward(self, h):
        return cpu.conv2d_maxpool_forward(h, self.layer.kernel.data, self._bias(), self.layer.strides, self._pads(h),
                                          self.layer._fused)


class _MaxPoolStage(_Stage):
    def __init__(self, layer, backend):
        self.layer = layer
        self.backend = backend

    def forward(self, h):
        from dlgpu.ops.conv import resolve_padding
        layer = self.layer
        pads = resolve_padding(layer.padding, h.shape[1:3], layer.pool_size, layer.strides, "max_pool2d")
        y, argmax = self.backend.max_pool2d_forward(h, layer.pool_size, layer.strides, pads)
        return y, (argmax, h.shape, pads)

    def backward(self, g, ctx, need_dx, destinations):
        argmax, shape, pads = ctx
        return self.backend.max_pool2d_backward(g, argmax, shape, self.layer.pool_size, self.layer.strides,
                                                pads), []


class _FlattenStage(_Stage):
    def forward(self, h):
        return h.reshape(h.shape[0], -1), h.shape

    def backward(self, g, ctx, need_dx, destinations):
        return g.reshape(ctx), []


class _DropoutStage(_Stage):
    def __init__(self, layer):
        self.layer = layer

    def forward(self, h):
        if self.layer.rate <= 0:
            return h, None
        from dlgpu.ops.nn import dropout_mask
        mask = dropout_mask(h, self.layer.rate, self.layer.noise_shape, generator=self.layer._generator(h))
        return h * mask, mask

    def backward(self, g, mask, need_dx, destinations):
        return (g if mask is None else g * mask), []
