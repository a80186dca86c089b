"""Complex tensors: their parts (real, imag, angle, conj), and the conversions between a complex tensor and
float ones (view_as_real, view_as_complex, polar).

A complex tensor holds a complex64 (or complex128) array, on either device: numpy and CuPy have the same
complex arithmetic, so nothing here is refused on the GPU.  Gradients follow torch's convention, which Keras's
torch backend gives: the gradient of a real loss L with respect to a complex z is dL/dRe(z) + i dL/dIm(z).
Each op here is linear over the reals (angle aside), so its backward is its adjoint under the real inner
product Re(<a, b>), and higher orders come from linear_result.  The elementwise arithmetic of ops.math
(multiply, exp ...) is written for real tensors: it computes complex values but its gradients there are not
the conjugate-aware ones, so differentiate through the float side (view_as_real, real, imag, abs).
"""

from __future__ import annotations

import numpy as np

from dlgpu.ops._core import array_module, float_operand, linear_result, make_result, to_tensor

__all__ = ["real", "imag", "conj", "conjugate", "angle", "isreal", "view_as_real", "view_as_complex", "polar"]


def _is_complex(x):
    return x.data.dtype.kind == "c"


def _dtypes(complex_dtype):
    """(complex dtype, its float dtype): complex64 pairs with float32."""
    return complex_dtype, np.finfo(complex_dtype).dtype


# Each (map, adjoint) pair below takes the same trailing arguments: the complex dtype and the float one.
def _real_part(h, complex_dtype, float_dtype):
    return array_module(h).real(h).astype(float_dtype)


def _as_complex(h, complex_dtype, float_dtype):
    return h.astype(complex_dtype)


def real(x):
    """The real part; a real tensor comes back as it is."""
    x = to_tensor(x)
    if not _is_complex(x):
        return x
    return linear_result(x, _real_part, _as_complex, _dtypes(x.data.dtype))


def _imag_part(h, complex_dtype, float_dtype):
    return array_module(h).imag(h).astype(float_dtype)


def _as_imaginary(h, complex_dtype, float_dtype):
    return (1j * h).astype(complex_dtype)


def imag(x):
    """The imaginary part; zeros of the same dtype for a real tensor (with a zero gradient)."""
    x = to_tensor(x)
    if not _is_complex(x):
        zeros = array_module(x.data).zeros_like(x.data)
        return make_result(zeros, (x,), lambda g: (zeros,))
    return linear_result(x, _imag_part, _as_imaginary, _dtypes(x.data.dtype))


def _conj(h):
    return array_module(h).conj(h)


def conj(x):
    """The complex conjugate; a real tensor comes back as it is."""
    x = to_tensor(x)
    if not _is_complex(x):
        return x
    return linear_result(x, _conj, _conj, ())


conjugate = conj


def angle(x):
    """The argument of each entry, in radians: atan2(imag, real).  Integer and bool tensors give floatx,
    complex64 gives float32.  d angle / d(re, im) = (-im, re) / |z|^2, which for a real tensor is zero (away
    from 0, where the angle jumps between 0 and pi)."""
    x = to_tensor(x)
    if not _is_complex(x):
        x = float_operand(x)
    xp = array_module(x.data)
    z = x.data
    out = xp.angle(z)
    if _is_complex(x):
        out = out.astype(np.finfo(z.dtype).dtype)

        def backward(g):
            r2 = (z * xp.conj(z)).real
            return (g * 1j * z / xp.where(r2 == 0, xp.ones((), r2.dtype), r2),)
        return make_result(out, (x,), backward)
    return make_result(out.astype(z.dtype), (x,), lambda g: (xp.zeros_like(g),))


def isreal(x):
    """True where the imaginary part is 0 (everywhere, for a real tensor)."""
    x = to_tensor(x)
    return make_result(array_module(x.data).isreal(x.data), (x,), lambda g: (None,))


def _pairs(h, complex_dtype, float_dtype):
    xp = array_module(h)
    return xp.stack([xp.real(h), xp.imag(h)], axis=-1).astype(float_dtype)


def _from_pairs(h, complex_dtype, float_dtype):
    return (h[..., 0] + 1j * h[..., 1]).astype(complex_dtype)


def view_as_real(x):
    """A complex tensor of shape S as a float tensor of shape S + (2,): (real, imag) on the last axis."""
    x = to_tensor(x)
    if not _is_complex(x):
        raise TypeError(f"view_as_real: needs a complex tensor; received dtype {x.dtype}")
    return linear_result(x, _pairs, _from_pairs, _dtypes(x.data.dtype))


def view_as_complex(x):
    """A float tensor of shape S + (2,) as a complex tensor of shape S (complex64 from float32)."""
    x = float_operand(x)
    if x.ndim < 1 or x.data.shape[-1] != 2:
        raise ValueError(f"view_as_complex: the last axis must have size 2 (real, imag); received shape "
                         f"{x.data.shape}")
    if x.data.dtype == np.float16:  # numpy has no complex32
        from dlgpu.ops.math import cast
        x = cast(x, "float32")
    complex_dtype = np.result_type(x.data.dtype, np.complex64)
    return linear_result(x, _from_pairs, _pairs, (complex_dtype, x.data.dtype))


def polar(abs_, angle):  # noqa: A002 - keras.ops signature shadows angle here
    """abs_ * (cos(angle) + i sin(angle)), composed of differentiable ops."""
    from dlgpu.ops.math import cos, multiply, sin
    from dlgpu.ops.shape import stack
    magnitude, phase = float_operand(abs_), float_operand(angle)
    return view_as_complex(stack([multiply(magnitude, cos(phase)), multiply(magnitude, sin(phase))], axis=-1))
