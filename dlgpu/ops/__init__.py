"""Differentiable ops with the keras.ops names: ``from dlgpu import ops; ops.matmul(a, b)``."""

from dlgpu.autograd import Tensor
from dlgpu.ops.conv import (average_pool, avg_pool2d, conv, conv2d, conv2d_maxpool, conv_transpose, depthwise_conv,
                             max_pool, max_pool2d, resolve_padding, separable_conv)
from dlgpu.ops.adaptive_pool import adaptive_average_pool, adaptive_max_pool
from dlgpu.ops import image  # noqa: F401  (keras.ops.image)
from dlgpu.ops import linalg  # noqa: F401  (keras.ops.linalg)
from dlgpu.ops.control_flow import (associative_scan, cond, fori_loop, map, scan, switch, vectorized_map,
                                    while_loop)
from dlgpu.ops.linalg import (cholesky, cholesky_inverse, det, eig, eigh, inv, logdet, lstsq, qr, solve,
                              solve_triangular, svd)
from dlgpu.ops.linalg import matrix_power, matrix_rank, pinv, slogdet
from dlgpu.ops.einsum import einsum, tensordot
from dlgpu.ops.ctc import ctc_decode, ctc_loss
from dlgpu.ops.fft import fft, fft2, ifft2, irfft, istft, rfft, stft
from dlgpu.ops.math import (abs, absolute, add, cast, ceil, clip, cos, divide, dot, equal, erf, erfinv, exp, expm1,
                            floor, floor_divide, greater, greater_equal, isfinite, isinf, isnan, less, less_equal,
                            log, log1p, log2, log10, logical_and, logical_not, logical_or, matmul, maximum,
                            minimum, mod, multiply, negative, not_equal, power, reciprocal, round, rsqrt, sign,
                            sin, sqrt, square, subtract, true_divide, where)
from dlgpu.ops.math import (allclose, arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, cbrt, cosh,
                            deg2rad, divide_no_nan, erfc, exp2, hypot, inner, isclose, isneginf, isposinf,
                            logaddexp, logaddexp2, logical_xor, nan_to_num, outer, rad2deg, signbit, sinh, tan,
                            trunc, vdot)
from dlgpu.ops.math import fabs, fmax, fmin, heaviside, isin, kron, select, sinc
from dlgpu.ops.nn import (batch_norm_train, batch_normalization, dense, dropout, elu, exponential, gelu,
                          hard_sigmoid, layer_normalization, leaky_relu, log_sigmoid, log_softmax, mish,
                          normalize, relu, relu6, rms_normalization, selu, set_random_seed, sigmoid,
                          sigmoid_cross_entropy, silu, softmax, softmax_cross_entropy, softplus, softsign, swish,
                          tanh)
from dlgpu.ops.nn import (binary_crossentropy, categorical_crossentropy, celu, dot_product_attention, glu,
                          hard_shrink, hard_silu, hard_swish, hard_tanh, multi_hot, psnr, soft_shrink,
                          sparse_categorical_crossentropy, sparse_plus, sparse_sigmoid, sparsemax, squareplus,
                          tanh_shrink, threshold)
from dlgpu.ops.reduce import (all, amax, amin, any, argmax, argmin, count_nonzero, cumsum, logsumexp, max, mean,
                              min, moments, norm, prod, std, sum, var)
from dlgpu.ops.reduce import (average, cumprod, median, percentile, ptp, quantile, segment_max, segment_min,
                              segment_sum, trace)
from dlgpu.ops.reduce import (argpartition, bincount, diff, digitize, in_top_k, nanargmax, nanargmin, nancumprod,
                              nancumsum, nanmax, nanmean, nanmin, nanprod, nanstd, nansum, nanvar, searchsorted)
from dlgpu.ops.shape import (arange, broadcast_to, concatenate, convert_to_numpy, convert_to_tensor, empty,
                             expand_dims, eye, flatten, flip, full, full_like, linspace, moveaxis, ndim, one_hot,
                             ones, ones_like, pad, repeat, reshape, shape, size, split, squeeze, stack,
                             stop_gradient, swapaxes, take, take_along_axis, tile, transpose, zeros, zeros_like)
from dlgpu.ops.shape import (copy, diag, diagonal, empty_like, fliplr, flipud, get_item, hstack, identity, meshgrid,
                             nonzero, ravel, roll, scatter, scatter_update, slice_update, tri, tril, triu, vstack)
from dlgpu.ops.shape import (array_split, column_stack, dsplit, dstack, dtype, geomspace, hsplit, is_tensor, logspace,
                             rot90, unravel_index, vsplit)
from dlgpu.ops.shape import slice_op as slice  # noqa: A004 - keras.ops name
from dlgpu.ops.shape import _getitem, unstack
from dlgpu.ops.sorting import argsort, sort, top_k, unique
from dlgpu.ops.bitwise import (bitwise_and, bitwise_invert, bitwise_left_shift, bitwise_not, bitwise_or,
                               bitwise_right_shift, bitwise_xor, gcd, lcm, left_shift, right_shift)
from dlgpu.ops.complex import angle, conj, conjugate, imag, isreal, polar, real, view_as_complex, view_as_real
from dlgpu.ops.einops import rearrange
from dlgpu.ops.linalg import lu_factor
from dlgpu.ops.numeric import (cdist, corrcoef, cross, fmod, histogram, i0, ldexp, nextafter, saturate_cast,
                               vander)
from dlgpu.ops.patches import depth_to_space, fold, space_to_depth, unfold
from dlgpu.ops.reduce import nanmedian, nanpercentile, nanquantile, segment_prod, trapezoid
from dlgpu.ops.shape import append, array, diagflat, view
from dlgpu.ops.signal import bartlett, blackman, correlate, extract_sequences, hamming, hanning, kaiser
from dlgpu.ops.transforms import custom_gradient, jvp, vectorize


def _install_operators():
    """Python operators on Tensor map to the ops above (kept here, where the ops are defined).  A binary
    operator with a KerasTensor on its right returns NotImplemented, so that Python asks the KerasTensor."""
    from dlgpu.ops.symbolic import reflected_operator as binary

    def reflected(fn):
        return binary(fn, swap=True)

    Tensor.__add__ = binary(add)
    Tensor.__radd__ = reflected(add)
    Tensor.__sub__ = binary(subtract)
    Tensor.__rsub__ = reflected(subtract)
    Tensor.__mul__ = binary(multiply)
    Tensor.__rmul__ = reflected(multiply)
    Tensor.__truediv__ = binary(divide)
    Tensor.__rtruediv__ = reflected(divide)
    Tensor.__floordiv__ = binary(floor_divide)
    Tensor.__mod__ = binary(mod)
    Tensor.__pow__ = binary(power)
    Tensor.__rpow__ = reflected(power)
    Tensor.__matmul__ = binary(matmul)
    Tensor.__rmatmul__ = reflected(matmul)
    Tensor.__neg__ = negative
    Tensor.__pos__ = lambda self: self
    Tensor.__abs__ = abs
    Tensor.__eq__ = equal
    Tensor.__ne__ = not_equal
    Tensor.__lt__ = binary(less)
    Tensor.__le__ = binary(less_equal)
    Tensor.__gt__ = binary(greater)
    Tensor.__ge__ = binary(greater_equal)
    # as Keras's tensors: & | ^ ~ are the logical ops (on bool tensors, the masks metrics build)
    Tensor.__and__ = binary(logical_and)
    Tensor.__rand__ = reflected(logical_and)
    Tensor.__or__ = binary(logical_or)
    Tensor.__ror__ = reflected(logical_or)
    Tensor.__xor__ = binary(logical_xor)
    Tensor.__rxor__ = reflected(logical_xor)
    Tensor.__invert__ = logical_not
    Tensor.__getitem__ = lambda self, index: _getitem(self, index)
    Tensor.__hash__ = lambda self: id(self)
    Tensor.T = property(lambda self: transpose(self))
    Tensor.reshape = lambda self, *shape: reshape(self, shape[0] if len(shape) == 1 else shape)
    Tensor.astype = cast
    Tensor.sum = lambda self, axis=None, keepdims=False: sum(self, axis, keepdims)
    Tensor.mean = lambda self, axis=None, keepdims=False: mean(self, axis, keepdims)


_install_operators()
del _install_operators


def _accept_symbolic_tensors():
    """Every public op (here and in ops.image / ops.linalg) also takes KerasTensors: see ops/symbolic.py.
    Done after the operators above, which keep the undecorated ops."""
    from dlgpu.ops import symbolic
    # the transforms take and return functions: the functions they return are where tensors go in
    skip = {"Tensor", "is_tensor", "set_random_seed", "resolve_padding", "custom_gradient", "vectorize"}
    symbolic.wrap_namespace(globals(), skip=skip)
    _wrap_module(symbolic, image, "image.")
    _wrap_module(symbolic, linalg, "linalg.")


def _wrap_module(symbolic, module, prefix):
    for key in list(vars(module)):
        value = vars(module)[key]
        if key.startswith("_") or not callable(value) or isinstance(value, type):
            continue
        if getattr(module, "__all__", None) is not None and key not in module.__all__:
            continue
        if getattr(value, "__module__", None) not in (module.__name__, "dlgpu.ops.reduce", "dlgpu.ops.image_filters"):
            continue
        top = globals().get(key)
        if getattr(top, "__wrapped__", None) is value:
            setattr(module, key, top)  # ops.linalg.cholesky is ops.cholesky
        elif getattr(value, "_dlgpu_op", None) is None:
            setattr(module, key, symbolic.wrap(prefix + key, value))


_accept_symbolic_tensors()
del _accept_symbolic_tensors


def _public_namespaces():
    """keras.ops.nn and keras.ops.numpy as dlgpu.ops.nn and dlgpu.ops.numpy.  dlgpu.ops.nn is also the module
    that implements the activations, losses and dropout, which other modules import internals from
    (seeded_generator, ACTIVATION_NAMES, ...), so it stays where it is: its ``__all__`` lists Keras's names
    and each is bound here to the public op, the one that also takes KerasTensors (as ops.linalg.cholesky is
    ops.cholesky).  dlgpu.ops.numpy only re-exports."""
    from dlgpu.ops import nn
    for name in nn.__all__:
        setattr(nn, name, globals()[name])


_public_namespaces()
del _public_namespaces
from dlgpu.ops import numpy  # noqa: E402,F401  (keras.ops.numpy)
