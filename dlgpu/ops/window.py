"""Window arithmetic shared by layers and ops (convolution and pooling sizes; no arrays involved)."""

from __future__ import annotations


def normalize_tuple(value, n, name, owner):
    """``value`` as a tuple of ``n`` positive ints (an int is repeated); errors name ``owner`` (a layer or op)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * n
    value = tuple(value)
    if len(value) != n or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ValueError(f"{owner}: the `{name}` argument must be a positive int or a tuple of {n} positive "
                         f"ints. Received: {name}={value!r}")
    return value


def conv_output_length(size, window, padding, stride, owner):
    """Output length of a convolution or pooling window along one axis (None stays None)."""
    if size is None:
        return None
    if padding == "same":
        return -(-size // stride)
    if size < window:
        raise ValueError(f"Layer '{owner}': the window ({window}) is larger than the input ({size}) with "
                         f"padding='valid'; the output would be empty. Use padding='same' or a smaller window.")
    return (size - window) // stride + 1
