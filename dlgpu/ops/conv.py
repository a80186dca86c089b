"""Convolution and pooling ops (NHWC), with 'valid'/'same' padding resolved here once."""

from __future__ import annotations

import itertools

from dlgpu.autograd import is_recording
from dlgpu.ops._core import (array_module, backend_of, linear_result, linear_vjp, make_result, promoted_operands,
                             recompute_vjp, same_device, to_tensor)
from dlgpu.ops.nn import ACTIVATION_NAMES
from dlgpu.ops.shape import pad, reshape
from dlgpu.ops.window import normalize_tuple


def resolve_padding(padding, in_hw, window, strides, op="conv2d"):
    """(top, bottom, left, right) for 'valid' or 'same' (TensorFlow's rule: extra padding at the end)."""
    padding = padding.lower() if isinstance(padding, str) else padding
    if padding == "valid":
        for size, k in zip(in_hw, window):
            if size < k:
                raise ValueError(f"{op}: the window {tuple(window)} is larger than the input {tuple(in_hw)} "
                                 f"with padding='valid'")
        return (0, 0, 0, 0)
    if padding != "same":
        raise ValueError(f"{op}: padding must be 'valid' or 'same'; received padding={padding!r}")
    pads = []
    for size, k, s in zip(in_hw, window, strides):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def _conv_operands(x, kernel, bias, strides, padding, activation, op):
    x, kernel = to_tensor(x), to_tensor(kernel)
    parents = (x, kernel) if bias is None else (x, kernel, to_tensor(bias))
    same_device(op, *parents)
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D NHWC input and a 4-D (kh, kw, Cin, Cout) kernel; "
                         f"received shapes {x.shape} and {kernel.shape}")
    if x.shape[-1] != kernel.shape[2]:
        raise ValueError(f"{op}: input has {x.shape[-1]} channels (shape {x.shape}) but the kernel expects "
                         f"{kernel.shape[2]} (kernel shape {kernel.shape})")
    if activation not in ACTIVATION_NAMES:
        raise ValueError(f"{op}: unsupported fused activation {activation!r}; expected one of {ACTIVATION_NAMES}")
    strides = normalize_tuple(strides, 2, "strides", op)
    pads = resolve_padding(padding, x.shape[1:3], kernel.shape[:2], strides, op)
    return parents, strides, pads


def conv2d(x, kernel, bias=None, strides=1, padding="valid", activation="linear", alpha=0.2):
    """activation(conv(x, kernel) + bias) for NHWC x and (kh, kw, Cin, Cout) kernels, one primitive."""
    parents, strides, pads = _conv_operands(x, kernel, bias, strides, padding, activation, "conv2d")
    x, kernel = parents[:2]
    be = backend_of(x.data)
    y, ctx = be.conv2d_forward(x.data, kernel.data, None if bias is None else parents[2].data,
                               strides, pads, activation, alpha)

    def backward(g):
        dx, dw, db = be.conv2d_backward(g, ctx, need_dx=x._tracked)
        return (dx, dw) if bias is None else (dx, dw, db)
    return make_result(y, parents, backward, (_conv2d_vjp, strides, pads, activation, alpha))


def _conv2d_unfused(x, kernel, strides, pads):
    """conv2d (no bias, no activation) as recorded ops with vjps: im2col from kh*kw strided slices, then one
    matmul.  Slower than the primitive; higher-order gradients differentiate through it."""
    from dlgpu.ops.math import matmul
    from dlgpu.ops.shape import stack
    n, h, w, cin = x.data.shape
    kh, kw, _, cout = kernel.data.shape
    sh, sw = strides
    ho = (h + pads[0] + pads[1] - kh) // sh + 1
    wo = (w + pads[2] + pads[3] - kw) // sw + 1
    padded = pad(x, ((0, 0), pads[:2], pads[2:], (0, 0))) if any(pads) else x
    every = slice(None)
    patches = [padded[every, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, every]
               for i in range(kh) for j in range(kw)]
    cols = reshape(stack(patches, axis=3), (n * ho * wo, kh * kw * cin))  # (i, j, c) order, as the kernel's
    return reshape(matmul(cols, reshape(kernel, (kh * kw * cin, cout))), (n, ho, wo, cout))


def _conv2d_vjp(out, g, strides, pads, activation, alpha):
    """The gradients of conv2d as recorded ops: the reverse sweep through _conv2d_unfused."""
    from dlgpu.autograd import backward_graph
    from dlgpu.ops.math import add
    from dlgpu.ops.nn import _activation_grad_graph
    from dlgpu.ops.reduce import sum as sum_
    x, kernel = out._parents[:2]
    bias = out._parents[2] if len(out._parents) == 3 else None
    unfused = []

    def preactivation():
        unfused.append(_conv2d_unfused(x, kernel, strides, pads))
        return unfused[0] if bias is None else add(unfused[0], bias)
    gz = _activation_grad_graph(g, preactivation, out, activation, alpha)
    if not unfused:
        unfused.append(_conv2d_unfused(x, kernel, strides, pads))
    grads = backward_graph([unfused[0]], [gz], [x, kernel])
    dx, dw = grads.get(id(x)), grads.get(id(kernel))
    if bias is None:
        return dx, dw
    return dx, dw, sum_(gz, axis=(0, 1, 2)) if bias._tracked else None


def conv2d_maxpool(x, kernel, bias=None, strides=1, padding="valid", activation="linear"):
    """max_pool2d(conv2d(x, kernel, bias, strides, padding, activation), 2): a convolution layer and the
    2x2 max-pooling after it.  On the CPU one primitive computes it with the bias and activation applied
    after the pooling, on a quarter of the elements, and without ever holding the whole convolution
    output (Sequential and functional models call this for a Conv2D followed by MaxPooling2D); elsewhere,
    or for an activation that does not commute with max, it is the two ops."""
    parents, strides, pads = _conv_operands(x, kernel, bias, strides, padding, activation, "conv2d_maxpool")
    x, kernel = parents[:2]
    be = backend_of(x.data)
    fused = getattr(be, "conv2d_maxpool_forward", None)
    out_hw = [(size + before + after - k) // s + 1 for size, before, after, k, s in
              zip(x.shape[1:3], pads[::2], pads[1::2], kernel.shape[:2], strides)]
    if fused is None or activation not in be.POOL_FUSABLE_ACTIVATIONS or min(out_hw) < 2:
        return max_pool2d(conv2d(x, kernel, bias, strides, padding, activation), 2)
    keep = is_recording() and any(p._tracked for p in parents)
    y, ctx = fused(x.data, kernel.data, None if bias is None else parents[2].data, strides, pads, activation,
                   keep_for_backward=keep)
    if not keep:
        return make_result(y, parents, None)

    def backward(g):
        dx, dw, db = be.conv2d_maxpool_backward(g, ctx, need_dx=x._tracked)
        return (dx, dw) if bias is None else (dx, dw, db)
    return make_result(y, parents, backward, (recompute_vjp, _conv2d_maxpool_graph, strides, pads, activation, ctx))


def _conv2d_maxpool_graph(x, kernel, *rest):
    """conv2d_maxpool's value as recorded ops with vjps (its vjp differentiates through them): the
    unfused convolution, the 2x2 pooling at the fused forward's argmax, then the bias and activation, in
    the fused op's order."""
    from dlgpu.ops import nn
    from dlgpu.ops.math import add
    *bias, strides, pads, activation, ctx = rest
    argmax = ctx[2]  # the fused forward's (uint8, offset 2*i+j of the first maximum)
    z = _conv2d_unfused(x, kernel, strides, pads)
    y = linear_result(z, _max_pool2d_gather, _max_pool2d_scatter,
                      (argmax, z.data.shape, (2, 2), (2, 2), (0, 0, 0, 0)))
    if bias:
        y = add(y, bias[0])
    return y if activation == "linear" else getattr(nn, activation)(y)


# -- the keras.ops convolution family: any rank, dilation, groups, depthwise, separable, transposed ----
# ops.conv sends the 2-D and 1-D cases with dilation 1 and groups 1 to conv2d above (our CUDA kernel on the
# GPU, the threaded im2col on the CPU); everything else runs the backend's conv_general primitives.

def _check_data_format(op, data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{op}: only data_format='channels_last' is supported; received data_format={data_format!r}")


def _spatial_operands(op, inputs, kernel, strides, dilation_rate):
    """x and kernel as Tensors of one dtype and device, both of rank 3 to 5, with strides and dilation
    as one positive int per spatial axis."""
    x, kernel = promoted_operands(op, [inputs, kernel])
    if x.ndim not in (3, 4, 5) or kernel.ndim != x.ndim:
        raise ValueError(f"{op}: expected a channels_last input of rank 3, 4 or 5 (1-D to 3-D) and a kernel of the "
                         f"same rank; received shapes {x.shape} and {kernel.shape}")
    rank = x.ndim - 2
    return (x, kernel, normalize_tuple(strides, rank, "strides", op),
            normalize_tuple(dilation_rate, rank, "dilation_rate", op))


def _dilated(k, d):
    return (k - 1) * d + 1


def spatial_pads(padding, sizes, window, strides, dilation, op="conv"):
    """((before, after), ...) per spatial axis for 'valid' or 'same' (TensorFlow's rule, extra padding at
    the end) of a dilated window, which spans (k - 1) * dilation + 1 inputs."""
    padding = padding.lower() if isinstance(padding, str) else padding
    spans = [_dilated(k, d) for k, d in zip(window, dilation)]
    if padding == "valid":
        if any(size < span for size, span in zip(sizes, spans)):
            raise ValueError(f"{op}: the window {tuple(window)} (dilation_rate={tuple(dilation)}, spanning "
                             f"{tuple(spans)}) is larger than the input {tuple(sizes)} with padding='valid'; the "
                             f"output would be empty")
        return ((0, 0),) * len(sizes)
    if padding != "same":
        raise ValueError(f"{op}: padding must be 'valid' or 'same'; received padding={padding!r}")
    pads = []
    for size, span, s in zip(sizes, spans, strides):
        total = max((-(-size // s) - 1) * s + span - size, 0)
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _conv_general(x, kernel, strides, dilation, pads, groups):
    be = backend_of(x.data)
    y, ctx = be.conv_general_forward(x.data, kernel.data, strides, dilation, pads, groups)
    return make_result(y, (x, kernel), lambda g: be.conv_general_backward(g, ctx, need_dx=x._tracked),
                       (_conv_general_vjp, strides, dilation, pads, groups))


# Higher-order gradients of the general convolution.  y = A(x, w) is bilinear, and so are its two
# gradients, dx = B(dy, w) (the transposed convolution) and dw = C(x, dy); each one's vjp is made of the
# three again: <h, B(g, w)> = <A(h, w), g> and <h, C(x, g)> = <A(x, h), g>.
def _conv_general_vjp(out, g, strides, dilation, pads, groups):
    x, kernel = out._parents
    geometry = (strides, dilation, pads, groups)
    return (_conv_input_grad(g, kernel, x.data.shape, *geometry) if x._tracked else None,
            _conv_kernel_grad(x, g, kernel.data.shape, *geometry) if kernel._tracked else None)


def _conv_apply(x, kernel, strides, dilation, pads, groups):
    """A(x, w): the convolution, recorded with the vjp above."""
    return _conv_general(x, kernel, strides, dilation, pads, groups)


def _conv_input_grad(g, kernel, x_shape, strides, dilation, pads, groups):
    """B(g, w): the convolution's input gradient for upstream g."""
    be = backend_of(g.data)
    dx = be.conv_general_input_grad(g.data, kernel.data, x_shape, strides, dilation, pads, groups)

    def backward(h):
        return (_conv_forward_data(h, kernel.data, strides, dilation, pads, groups),
                _conv_kernel_grad_data(h, g.data, kernel.data.shape, strides, dilation, pads, groups))
    return make_result(dx, (g, kernel), backward, (_conv_input_grad_vjp, strides, dilation, pads, groups))


def _conv_input_grad_vjp(out, h, strides, dilation, pads, groups):
    g, kernel = out._parents
    return (_conv_apply(h, kernel, strides, dilation, pads, groups) if g._tracked else None,
            _conv_kernel_grad(h, g, kernel.data.shape, strides, dilation, pads, groups) if kernel._tracked else None)


def _conv_kernel_grad(x, g, w_shape, strides, dilation, pads, groups):
    """C(x, g): the convolution's kernel gradient for upstream g."""
    dw = _conv_kernel_grad_data(x.data, g.data, w_shape, strides, dilation, pads, groups)

    def backward(h):
        be = backend_of(h)
        return (be.conv_general_input_grad(g.data, h, x.data.shape, strides, dilation, pads, groups),
                _conv_forward_data(x.data, h, strides, dilation, pads, groups))
    return make_result(dw, (x, g), backward, (_conv_kernel_grad_vjp, strides, dilation, pads, groups))


def _conv_kernel_grad_vjp(out, h, strides, dilation, pads, groups):
    x, g = out._parents
    return (_conv_input_grad(g, h, x.data.shape, strides, dilation, pads, groups) if x._tracked else None,
            _conv_apply(x, h, strides, dilation, pads, groups) if g._tracked else None)


def _conv_forward_data(x, w, strides, dilation, pads, groups):
    return backend_of(x).conv_general_forward(x, w, strides, dilation, pads, groups)[0]


def _conv_kernel_grad_data(x, g, w_shape, strides, dilation, pads, groups):
    # the primitives compute dW from a forward's kept rows: a forward by a zero kernel keeps them
    be = backend_of(x)
    _, ctx = be.conv_general_forward(x, array_module(x).zeros(w_shape, x.dtype), strides, dilation, pads, groups)
    return be.conv_general_backward(g, ctx, need_dx=False)[1]


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """keras.ops.conv, channels_last: 1-D to 3-D, dilated, and grouped when the kernel (*k, C/groups, Cout)
    has fewer input channels than ``inputs`` (groups = C / kernel.shape[-2], as Keras infers it)."""
    _check_data_format("conv", data_format)
    x, kernel, strides, dilation = _spatial_operands("conv", inputs, kernel, strides, dilation_rate)
    channels, (cin, cout) = x.shape[-1], kernel.shape[-2:]
    if channels % cin:
        raise ValueError(f"conv: the input's {channels} channels (shape {x.shape}) are not a multiple of the "
                         f"kernel's {cin} input channels (kernel shape {kernel.shape})")
    groups = channels // cin
    if cout % groups:
        raise ValueError(f"conv: the kernel's {cout} output channels (kernel shape {kernel.shape}) are not a "
                         f"multiple of the {groups} groups the input's {channels} channels make")
    rank = x.ndim - 2
    if groups == 1 and dilation == (1,) * rank and rank in (1, 2):
        if rank == 2:
            return conv2d(x, kernel, None, strides, padding)
        n, length, _ = x.shape  # a unit-height image: the reshapes are views and carry the gradients
        y = conv2d(reshape(x, (n, 1, length, channels)), reshape(kernel, (1,) + kernel.shape), None,
                   (1, strides[0]), padding)
        return reshape(y, (n,) + y.shape[2:])
    pads = spatial_pads(padding, x.shape[1:-1], kernel.shape[:-2], strides, dilation, "conv")
    return _conv_general(x, kernel, strides, dilation, pads, groups)


def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """keras.ops.depthwise_conv: each input channel c convolved with its own kernel[..., c, :], output
    channel c * multiplier + m; a convolution with one group per channel."""
    _check_data_format("depthwise_conv", data_format)
    x, kernel, strides, dilation = _spatial_operands("depthwise_conv", inputs, kernel, strides, dilation_rate)
    channels, multiplier = x.shape[-1], kernel.shape[-1]
    if kernel.shape[-2] != channels:
        raise ValueError(f"depthwise_conv: the input has {channels} channels (shape {x.shape}) but the kernel "
                         f"(*kernel_size, channels, depth_multiplier) expects {kernel.shape[-2]} (kernel shape "
                         f"{kernel.shape})")
    pads = spatial_pads(padding, x.shape[1:-1], kernel.shape[:-2], strides, dilation, "depthwise_conv")
    grouped = reshape(kernel, kernel.shape[:-2] + (1, channels * multiplier))
    return _conv_general(x, grouped, strides, dilation, pads, channels)


def separable_conv(inputs, depthwise_kernel, pointwise_kernel, strides=1, padding="valid", data_format=None,
                   dilation_rate=1):
    """keras.ops.separable_conv: depthwise_conv, then a 1x1 convolution by pointwise_kernel
    (*ones, channels * depth_multiplier, Cout)."""
    _check_data_format("separable_conv", data_format)
    y = depthwise_conv(inputs, depthwise_kernel, strides, padding, None, dilation_rate)
    pointwise = to_tensor(pointwise_kernel)
    expected = (1,) * (y.ndim - 2) + (y.shape[-1],)
    if pointwise.ndim != y.ndim or tuple(pointwise.shape[:-1]) != expected:
        raise ValueError(f"separable_conv: pointwise_kernel must have shape {expected + ('Cout',)} for this "
                         f"depthwise output of {y.shape[-1]} channels; received {pointwise.shape}")
    return conv(y, pointwise)


def transpose_geometry(size, k, stride, dilation, padding, output_padding):
    """(output length, (before, after) pads of the convolution whose input gradient this transposed
    convolution is, zeros appended to the output).  Keras's rule (keras/src/backend/common/
    backend_utils.py, _convert_conv_transpose_padding_args_from_keras_to_jax): 'valid' gives
    (size - 1) * stride + max(span, stride) by default, 'same' gives size * stride; an explicit
    output_padding sets the length to (size - 1) * stride + span + output_padding ('valid') or
    (size - 1) * stride + span % 2 + output_padding ('same')."""
    span = _dilated(k, dilation)
    if padding == "valid":
        extra = max(span, stride) - span if output_padding is None else output_padding
        left, right = span - 1, span - 1 + extra
    else:
        total = stride + span - 2 if output_padding is None else span + span % 2 - 2 + output_padding
        left = min(total // 2 + total % 2, span - 1)
        right = total - left
    length = (size - 1) * stride + left + right - span + 2
    # An output position at distance p from the full transposed output's ends is a convolution input
    # padded by span - 1 - left before and span - 1 - right after; past the full output (right > span - 1)
    # nothing reaches it, so those positions are zeros appended afterwards.
    return length, (span - 1 - left, max(span - 1 - right, 0)), max(right - (span - 1), 0)


def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None,
                   dilation_rate=1):
    """keras.ops.conv_transpose, channels_last, kernel (*k, Cout, Cin): the input gradient of the
    convolution by ``kernel`` whose output has this input's shape.  Its backward is that convolution
    (for the input) and the convolution's kernel gradient with the roles of input and upstream swapped."""
    _check_data_format("conv_transpose", data_format)
    x, kernel, strides, dilation = _spatial_operands("conv_transpose", inputs, kernel, strides, dilation_rate)
    rank = x.ndim - 2
    if x.shape[-1] != kernel.shape[-1]:
        raise ValueError(f"conv_transpose: the input has {x.shape[-1]} channels (shape {x.shape}) but the kernel "
                         f"(*kernel_size, filters, in_channels) expects {kernel.shape[-1]} (kernel shape "
                         f"{kernel.shape})")
    padding = padding.lower() if isinstance(padding, str) else padding
    if padding not in ("valid", "same"):
        raise ValueError(f"conv_transpose: padding must be 'valid' or 'same'; received padding={padding!r}")
    if output_padding is not None:
        output_padding = (output_padding,) * rank if isinstance(output_padding, int) else tuple(output_padding)
        if len(output_padding) != rank or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0
                                                  for p in output_padding):
            raise ValueError(f"conv_transpose: output_padding must be None, a non-negative int or a tuple of {rank} "
                             f"of them; received output_padding={output_padding!r}")
    geometry = [transpose_geometry(size, k, s, d, padding, None if output_padding is None else p)
                for size, k, s, d, p in zip(x.shape[1:-1], kernel.shape[:-2], strides, dilation,
                                            output_padding or (0,) * rank)]
    if any(length < 1 for length, _, _ in geometry):
        raise ValueError(f"conv_transpose: the output would be empty: input shape {x.shape}, kernel shape "
                         f"{kernel.shape}, strides={strides}, padding={padding!r}, output_padding={output_padding}")
    pads = tuple(p for _, p, _ in geometry)
    appended = [extra for _, _, extra in geometry]
    out_shape = (x.shape[0], *(length - extra for (length, _, _), extra in zip(geometry, appended)), kernel.shape[-2])
    be = backend_of(x.data)
    y = be.conv_general_input_grad(x.data, kernel.data, out_shape, strides, dilation, pads, 1)

    def backward(g):  # one forward for both gradients (B's own backward would run two)
        dx, ctx = be.conv_general_forward(g, kernel.data, strides, dilation, pads, 1)
        _, dw = be.conv_general_backward(x.data, ctx, need_dx=False) if kernel._tracked else (None, None)
        return dx, dw
    # y = B(x, w), the convolution's input gradient: higher orders through its vjp (see above)
    y = make_result(y, (x, kernel), backward, (_conv_input_grad_vjp, strides, dilation, pads, 1))
    if any(appended):
        y = pad(y, ((0, 0), *((0, extra) for extra in appended), (0, 0)))
    return y


def _pool_args(x, pool_size, strides, padding, op):
    x = to_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D NHWC input; received shape {x.shape}")
    pool = normalize_tuple(pool_size, 2, "pool_size", op)
    strides = pool if strides is None else normalize_tuple(strides, 2, "strides", op)
    pads = resolve_padding(padding, x.shape[1:3], pool, strides, op)
    return x, pool, strides, pads


def max_pool2d(x, pool_size=2, strides=None, padding="valid"):
    x, pool, strides, pads = _pool_args(x, pool_size, strides, padding, "max_pool2d")
    be = backend_of(x.data)
    if not (x._tracked and is_recording()):  # inference: no backward, so no argmax to keep
        return make_result(be.max_pool2d(x.data, pool, strides, pads), (x,), None)
    y, argmax = be.max_pool2d_forward(x.data, pool, strides, pads)
    shape = x.data.shape
    return make_result(y, (x,), lambda g: (be.max_pool2d_backward(g, argmax, shape, pool, strides, pads),),
                       (linear_vjp, _max_pool2d_gather, _max_pool2d_scatter, argmax, shape, pool, strides, pads))


def avg_pool2d(x, pool_size=2, strides=None, padding="valid"):
    x, pool, strides, pads = _pool_args(x, pool_size, strides, padding, "avg_pool2d")
    be = backend_of(x.data)
    y, _ = be.avg_pool2d_forward(x.data, pool, strides, pads)
    shape = x.data.shape
    return make_result(y, (x,), lambda g: (be.avg_pool2d_backward(g, shape, pool, strides, pads),),
                       (linear_vjp, _avg_pool2d_apply, _avg_pool2d_adjoint, shape, pool, strides, pads))


def _pool_operands(op, inputs, pool_size, strides, padding, data_format):
    """x as a float Tensor of rank 3 to 5, pool and strides as one positive int per spatial axis, and
    ((before, after), ...) pads."""
    _check_data_format(op, data_format)
    x = to_tensor(inputs)
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"{op}: expected a channels_last input of rank 3, 4 or 5 (1-D to 3-D pooling); "
                         f"received shape {x.shape}")
    if x.data.dtype.kind != "f":  # the -inf padding of max and the division of the mean need floats
        raise TypeError(f"{op}: expected a floating-point input; received dtype {x.data.dtype}")
    rank = x.ndim - 2
    pool = normalize_tuple(pool_size, rank, "pool_size", op)
    strides = pool if strides is None else normalize_tuple(strides, rank, "strides", op)
    flat = resolve_padding(padding, x.shape[1:-1], pool, strides, op)
    if not any(flat):  # resolve_padding's 'valid' is 2-D's four zeros
        flat = (0, 0) * rank
    return x, pool, strides, padding, tuple(zip(flat[::2], flat[1::2]))


def _pool_as_2d(pool_2d, x, pool, strides, padding):
    """1-D pooling as the 2-D op over a unit-height image (the reshapes are views and carry gradients)."""
    n, length, channels = x.shape
    y = pool_2d(reshape(x, (n, 1, length, channels)), (1,) + pool, (1,) + strides, padding)
    return reshape(y, (n, y.shape[2], channels))


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """keras.ops.max_pool, channels_last, 1-D to 3-D.  1-D and 2-D run max_pool2d (our kernel on the GPU);
    3-D runs the backend's max_pool_general primitives.  Ties send the gradient to the first maximum."""
    x, pool, strides, padding, pads = _pool_operands("max_pool", inputs, pool_size, strides, padding, data_format)
    if x.ndim == 4:
        return max_pool2d(x, pool, strides, padding)
    if x.ndim == 3:
        return _pool_as_2d(max_pool2d, x, pool, strides, padding)
    be = backend_of(x.data)
    if not (x._tracked and is_recording()):  # inference: no backward, so no argmax to keep
        return make_result(be.max_pool_general(x.data, pool, strides, pads), (x,), None)
    y, argmax = be.max_pool_general_forward(x.data, pool, strides, pads)
    shape = x.data.shape
    return make_result(y, (x,), lambda g: (be.max_pool_general_backward(g, argmax, shape, pool, strides, pads),),
                       (linear_vjp, _max_pool_gather, _max_pool_general_scatter, argmax, shape, pool, strides, pads))


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """keras.ops.average_pool, channels_last, 1-D to 3-D; with padding='same' each window's mean is over
    its real inputs only (Keras/TensorFlow), padding not counted."""
    x, pool, strides, padding, pads = _pool_operands("average_pool", inputs, pool_size, strides, padding,
                                                     data_format)
    if x.ndim == 4:
        return avg_pool2d(x, pool, strides, padding)
    if x.ndim == 3:
        return _pool_as_2d(avg_pool2d, x, pool, strides, padding)
    be = backend_of(x.data)
    y, _ = be.avg_pool_general_forward(x.data, pool, strides, pads)
    shape = x.data.shape
    return make_result(y, (x,), lambda g: (be.avg_pool_general_backward(g, shape, pool, strides, pads),),
                       (linear_vjp, _avg_pool_general_apply, _avg_pool_general_adjoint, shape, pool, strides, pads))


# The pools as linear maps for higher-order gradients (linear_vjp): with the argmax fixed, max pooling
# gathers one input per window and its gradient scatters back; average pooling and its gradient are both
# linear.  Each (map, transpose) pair takes the same trailing arguments.
def _max_pool_gather(h, argmax, shape, pool, strides, pads):
    """h (the input's shape) at each window's argmax: the max pool's Jacobian applied to h.  ``pads`` is
    one (before, after) per spatial axis."""
    xp = array_module(h)
    padded = xp.pad(h, ((0, 0), *pads, (0, 0)))
    out = argmax.shape[1:-1]
    y = xp.zeros(argmax.shape, h.dtype)
    for t, offsets in enumerate(itertools.product(*(range(k) for k in pool))):
        window = padded[(slice(None), *(slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offsets, strides, out)),
                         slice(None))]
        y += window * (argmax == t)
    return y


def _max_pool2d_gather(h, argmax, shape, pool, strides, pads):
    return _max_pool_gather(h, argmax, shape, pool, strides, (pads[:2], pads[2:]))


def _max_pool2d_scatter(g, argmax, shape, pool, strides, pads):
    return backend_of(g).max_pool2d_backward(g, argmax, shape, pool, strides, pads)


def _max_pool_general_scatter(g, argmax, shape, pool, strides, pads):
    return backend_of(g).max_pool_general_backward(g, argmax, shape, pool, strides, pads)


def _avg_pool2d_apply(h, shape, pool, strides, pads):
    return backend_of(h).avg_pool2d_forward(h, pool, strides, pads)[0]


def _avg_pool2d_adjoint(g, shape, pool, strides, pads):
    return backend_of(g).avg_pool2d_backward(g, shape, pool, strides, pads)


def _avg_pool_general_apply(h, shape, pool, strides, pads):
    return backend_of(h).avg_pool_general_forward(h, pool, strides, pads)[0]


def _avg_pool_general_adjoint(g, shape, pool, strides, pads):
    return backend_of(g).avg_pool_general_backward(g, shape, pool, strides, pads)
