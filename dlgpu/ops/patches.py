"""Moving pixels between space and depth: depth_to_space, space_to_depth (reshape + transpose, as Keras's), and
unfold / fold (im2col and col2im on channels-first images, as torch's, which Keras's follow).

unfold and fold are each other's transposes, so each is recorded with the other as its backward
(linear_result): every order of gradient runs the same two array functions, on numpy or CuPy alike.
"""

from __future__ import annotations

from dlgpu.ops._core import array_module, linear_result, to_tensor
from dlgpu.ops.window import normalize_tuple

__all__ = ["depth_to_space", "space_to_depth", "unfold", "fold"]


def _block_operand(op, x, block_size, data_format):
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"{op}: data_format must be 'channels_last' or 'channels_first'; received "
                         f"data_format={data_format!r}")
    x = to_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"{op}: needs a 4-D tensor; received shape {x.data.shape}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"{op}: `block_size` must be a positive integer; received block_size={block_size!r}")
    return x


def depth_to_space(x, block_size, data_format="channels_last"):
    """(N, H, W, C) -> (N, H*b, W*b, C/b^2): each pixel's channels become a b x b block (TF's order)."""
    from dlgpu.ops.shape import reshape, transpose
    x = _block_operand("depth_to_space", x, block_size, data_format)
    b = block_size
    if data_format == "channels_last":
        n, h, w, c = x.data.shape
        if c % (b * b):
            raise ValueError(f"depth_to_space: the channels ({c}) must be divisible by block_size**2 ({b * b})")
        x = transpose(reshape(x, (n, h, w, b, b, c // (b * b))), (0, 1, 3, 2, 4, 5))
        return reshape(x, (n, h * b, w * b, c // (b * b)))
    n, c, h, w = x.data.shape
    if c % (b * b):
        raise ValueError(f"depth_to_space: the channels ({c}) must be divisible by block_size**2 ({b * b})")
    x = transpose(reshape(x, (n, c // (b * b), b, b, h, w)), (0, 1, 4, 2, 5, 3))
    return reshape(x, (n, c // (b * b), h * b, w * b))


def space_to_depth(x, block_size, data_format="channels_last"):
    """(N, H, W, C) -> (N, H/b, W/b, C*b^2): each b x b block becomes one pixel's channels."""
    from dlgpu.ops.shape import reshape, transpose
    x = _block_operand("space_to_depth", x, block_size, data_format)
    b = block_size
    spatial = x.data.shape[1:3] if data_format == "channels_last" else x.data.shape[2:]
    if spatial[0] % b or spatial[1] % b:
        raise ValueError(f"space_to_depth: the spatial size {tuple(spatial)} must be divisible by "
                         f"block_size={b}")
    if data_format == "channels_last":
        n, h, w, c = x.data.shape
        x = transpose(reshape(x, (n, h // b, b, w // b, b, c)), (0, 1, 3, 2, 4, 5))
        return reshape(x, (n, h // b, w // b, c * b * b))
    n, c, h, w = x.data.shape
    x = transpose(reshape(x, (n, c, h // b, b, w // b, b)), (0, 1, 3, 5, 2, 4))
    return reshape(x, (n, c * b * b, h // b, w // b))


def _geometry(op, kernel_size, dilation, padding, stride):
    k = normalize_tuple(kernel_size, 2, "kernel_size", op)
    d = normalize_tuple(dilation, 2, "dilation", op)
    s = normalize_tuple(stride, 2, "stride", op)
    p = (padding, padding) if isinstance(padding, int) else tuple(padding)
    if len(p) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in p):
        raise ValueError(f"{op}: the `padding` argument must be a non-negative int or a tuple of 2 of them. "
                         f"Received: padding={padding!r}")
    return k, d, p, s


def _blocks_per_axis(op, size, k, d, p, s):
    count = (size + 2 * p - d * (k - 1) - 1) // s + 1
    if count < 1:
        raise ValueError(f"{op}: a spatial size of {size} (padding {p}) is smaller than the dilated kernel "
                         f"({d * (k - 1) + 1})")
    return count


def _tap_slices(k, d, s, blocks):
    """For each kernel tap, the strided slices of the padded image that its blocks read."""
    return [(slice(i * d[0], i * d[0] + s[0] * (blocks[0] - 1) + 1, s[0]),
             slice(j * d[1], j * d[1] + s[1] * (blocks[1] - 1) + 1, s[1]))
            for i in range(k[0]) for j in range(k[1])]


def _unfold_data(h, k, d, p, s, blocks, image_hw):
    xp = array_module(h)
    n, c = h.shape[:2]
    padded = xp.pad(h, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    taps = [padded[:, :, rows, cols] for rows, cols in _tap_slices(k, d, s, blocks)]
    return xp.stack(taps, axis=2).reshape(n, c * k[0] * k[1], blocks[0] * blocks[1])


def _fold_data(h, k, d, p, s, blocks, image_hw):
    xp = array_module(h)
    n = h.shape[0]
    c = h.shape[1] // (k[0] * k[1])
    cols = h.reshape(n, c, k[0] * k[1], blocks[0], blocks[1])
    padded = xp.zeros((n, c, image_hw[0] + 2 * p[0], image_hw[1] + 2 * p[1]), h.dtype)
    for t, (rows, columns) in enumerate(_tap_slices(k, d, s, blocks)):
        padded[:, :, rows, columns] += cols[:, :, t]  # one tap's blocks never overlap each other
    return padded[:, :, p[0]:p[0] + image_hw[0], p[1]:p[1] + image_hw[1]]


def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """im2col: (N, C, H, W) -> (N, C*kh*kw, L), each column one sliding block (channel-major, as torch)."""
    x = to_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"unfold: needs a 4-D channels-first tensor (N, C, H, W); received shape {x.data.shape}")
    k, d, p, s = _geometry("unfold", kernel_size, dilation, padding, stride)
    image_hw = x.data.shape[2:]
    blocks = tuple(_blocks_per_axis("unfold", image_hw[i], k[i], d[i], p[i], s[i]) for i in range(2))
    return linear_result(x, _unfold_data, _fold_data, (k, d, p, s, blocks, image_hw))


def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """col2im, the transpose of unfold: (N, C*kh*kw, L) -> (N, C, oh, ow), overlapping blocks summed."""
    x = to_tensor(x)
    k, d, p, s = _geometry("fold", kernel_size, dilation, padding, stride)
    image_hw = normalize_tuple(output_size, 2, "output_size", "fold")
    if x.ndim != 3 or x.data.shape[1] % (k[0] * k[1]):
        raise ValueError(f"fold: needs a 3-D tensor (N, C*kh*kw, L) with the second axis divisible by "
                         f"kh*kw={k[0] * k[1]}; received shape {x.data.shape}")
    blocks = tuple(_blocks_per_axis("fold", image_hw[i], k[i], d[i], p[i], s[i]) for i in range(2))
    if x.data.shape[2] != blocks[0] * blocks[1]:
        raise ValueError(f"fold: output_size={image_hw} with these kernel_size, dilation, padding and stride "
                         f"has {blocks[0]} x {blocks[1]} = {blocks[0] * blocks[1]} blocks, but x holds "
                         f"{x.data.shape[2]} (shape {x.data.shape})")
    return linear_result(x, _fold_data, _unfold_data, (k, d, p, s, blocks, image_hw))
