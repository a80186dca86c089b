"""Layer pairs that Sequential and functional models run as one op.

A Conv2D followed by a 2x2 MaxPooling2D is the most common pair in a CNN.  ops.conv2d_maxpool computes
it on the CPU with the bias and activation applied after the pooling (on a quarter of the elements) and
without holding the whole convolution output: the seed CNN's predict on 1024 images takes 42 + 50 ms
for its two pairs as separate layers and 22 + 34 ms fused (2-core CPU, 2026-11-23).  Only exact Conv2D
and MaxPooling2D layers qualify (a subclass may override call), built, with a built-in activation and
no activity regularizer, and only when nothing else reads the convolution's output.  The layers stay
two layers everywhere else: summary, weights, saving, and every other device (the op is the two ops
there).
"""

from __future__ import annotations

import numpy as np

from dlgpu import ops
from dlgpu.autograd import Tensor, autocast_active

_FLOAT32 = np.dtype(np.float32)


def fusable(conv, pool):
    """Whether ``conv`` then ``pool`` may run as ops.conv2d_maxpool."""
    from dlgpu.layers.conv import Conv2D
    from dlgpu.layers.pooling import MaxPooling2D
    # float32 layers only, outside any autocast scope: the pair skips conv's __call__, where a mixed
    # policy would cast the input and the kernel (the fused primitive is float32 on the GPU)
    return (type(conv) is Conv2D and type(pool) is MaxPooling2D and conv.built and pool.built
            and conv._compute_float is _FLOAT32 and not conv._mixed and pool._compute_float is _FLOAT32
            and not autocast_active[0] and conv._fused is not None and conv.activity_regularizer is None and pool.activity_regularizer is None
            and pool.pool_size == (2, 2) and pool.strides == (2, 2) and pool.padding == "valid")


def run_conv_pool(conv, pool, inputs):
    """pool(conv(inputs)) as one op; ``inputs`` is a Tensor (conv checks and converts it as its own call would)."""
    x = conv._accept_tensor(inputs)
    return ops.conv2d_maxpool(x, conv.kernel, conv.bias, conv.strides, conv.padding, activation=conv._fused)


def run_sequence(layers, x, training):
    """Call ``layers`` one after the other on ``x`` (Sequential.call), fusing the pairs that qualify."""
    i, count = 0, len(layers)
    while i < count:
        layer = layers[i]
        if i + 1 < count and isinstance(x, Tensor) and fusable(layer, layers[i + 1]):
            x = run_conv_pool(layer, layers[i + 1], x)
            i += 2
        else:
            x = layer(x, training=training)
            i += 1
    return x


def conv_pool_nodes(nodes, model_outputs):
    """{id(conv node): pool node} for graph nodes whose one-output Conv2D feeds only a MaxPooling2D node
    (and is not a model output), so that the graph runner may compute both at the conv node."""
    from dlgpu.layers.base import flatten
    from dlgpu.layers.conv import Conv2D
    from dlgpu.layers.pooling import MaxPooling2D
    consumers = {}
    for node in nodes:
        for kt in flatten(node.inputs):
            consumers.setdefault(id(kt), []).append(node)
    outputs = {id(t) for t in model_outputs}
    pairs = {}
    for node in nodes:
        if type(node.layer) is not Conv2D or node.kwargs or id(node.outputs) in outputs:
            continue
        readers = consumers.get(id(node.outputs), [])
        if len(readers) == 1 and type(readers[0].layer) is MaxPooling2D and not readers[0].kwargs:
            pairs[id(node)] = readers[0]
    return pairs
