"""Integer ops: bitwise logic, shifts, gcd and lcm.  None has a gradient (their values are integers), and
every one follows Keras 3's promotion of its two operands, so int8 & int16 is int16 and uint8 | 1 is uint8."""

from __future__ import annotations

from dlgpu.ops._core import array_module, binary_operands, make_result, to_tensor

__all__ = ["bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "bitwise_invert", "bitwise_left_shift",
           "bitwise_right_shift", "left_shift", "right_shift", "gcd", "lcm"]


def _integer_operands(op, x, y):
    a, b = binary_operands(op, x, y)
    if a.data.dtype.kind not in "biu":
        raise TypeError(f"{op}: needs integer or bool tensors; received dtypes {_dtype(x)} and {_dtype(y)}")
    return a, b


def _dtype(v):
    return getattr(v, "dtype", type(v).__name__)


def _integer_binary(name, numpy_name):
    def op(x, y):
        a, b = _integer_operands(name, x, y)
        out = getattr(array_module(a.data), numpy_name)(a.data, b.data)
        return make_result(out, (a, b), lambda g: (None, None))
    op.__name__ = name
    return op


bitwise_and = _integer_binary("bitwise_and", "bitwise_and")
bitwise_or = _integer_binary("bitwise_or", "bitwise_or")
bitwise_xor = _integer_binary("bitwise_xor", "bitwise_xor")
gcd = _integer_binary("gcd", "gcd")
lcm = _integer_binary("lcm", "lcm")


def _shift(name, numpy_name):
    def op(x, y):
        # Keras shifts by a Python int without promoting x (uint8 << 3 stays uint8)
        if isinstance(y, int) and not isinstance(y, bool):
            a = to_tensor(x)
            if a.data.dtype.kind not in "iu":
                raise TypeError(f"{name}: needs an integer tensor; received dtype {a.dtype}")
            xp = array_module(a.data)
            out = getattr(xp, numpy_name)(a.data, xp.asarray(y, a.data.dtype))
            return make_result(out, (a,), lambda g: (None,))
        a, b = _integer_operands(name, x, y)
        out = getattr(array_module(a.data), numpy_name)(a.data, b.data)
        return make_result(out, (a, b), lambda g: (None, None))
    op.__name__ = name
    return op


bitwise_left_shift = _shift("bitwise_left_shift", "left_shift")
bitwise_right_shift = _shift("bitwise_right_shift", "right_shift")
left_shift = bitwise_left_shift
right_shift = bitwise_right_shift


def bitwise_invert(x):
    x = to_tensor(x)
    if x.data.dtype.kind not in "biu":
        raise TypeError(f"bitwise_invert: needs an integer or bool tensor; received dtype {x.dtype}")
    return make_result(array_module(x.data).invert(x.data), (x,), lambda g: (None,))


bitwise_not = bitwise_invert
