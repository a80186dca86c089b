"""ContrastLimitedAdaptiveHistogramEqualization (keras.layers.ContrastLimitedAdaptiveHistogramEqualization):
histogram equalization per image, channel and tile of a ``tile_grid_size`` grid, each tile's histogram clipped
at ``clip_limit`` times the mean bin count (the excess spread over all bins), and each pixel's value mapped
through the four nearest tiles' lookup tables, interpolated bilinearly.

Keras's arithmetic is followed step by step: values taken to 0..255 from ``value_range``; the image padded
at the bottom and right by symmetric reflection to a whole number of tiles (the padding counts in the
histograms); 256 bins of the truncated values; lookup tables 255 (cdf - cdf_min) / (n - cdf_min); tile
centres at (i + 1/2) tile sizes, the grid extended by one tile on each side by edge copies.  That is what
Keras computes on its numpy, JAX and TensorFlow backends; on torch it truncates the clip limit (its histograms
are integers there) and pads by edge replication (its "symmetric" pad), which change the numbers when the
limit clip_limit * tile area / 256 is fractional or the padding is wider than one pixel.  Like Keras it
applies in training and inference alike.  The result depends on the input only through integer bins: it has
no gradient (a constant), as in Keras.

All tiles at once: one bincount over (image, tile, channel, value) for the histograms and four gathers from
the flattened tables, on the input's array module.
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor
from dlgpu.layers.image_color import _number, _value_range
from dlgpu.layers.image_preprocessing import ImageLayer
from dlgpu.ops._core import array_module

_BINS = 256


def _to_range(x, source, target):
    """Keras's _transform_value_range in float32: through [0, 1]."""
    if source[0] == target[0] and source[1] == target[1]:
        return x
    low, high = np.float32(source[0]), np.float32(source[1])
    return (x - low) / (high - low) * (np.float32(target[1]) - np.float32(target[0])) + np.float32(target[0])


def clahe(images, clip_limit, tile_grid_size):
    """CLAHE of a batch (b, h, w, c) of float32 values on the 0..255 scale; an array of the same module."""
    xp = array_module(images)
    batch, height, width, channels = images.shape
    grid_h, grid_w = tile_grid_size
    tile_h, tile_w = -(-height // grid_h), -(-width // grid_w)
    pad_h, pad_w = tile_h * grid_h - height, tile_w * grid_w - width
    if pad_h or pad_w:
        images = xp.pad(images, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
    values = xp.clip(images, 0, _BINS - 1).astype(xp.int32)  # truncation, as Keras's cast (clip first: same)

    # histograms: (batch, grid_h, grid_w, channels, bins) from one bincount of flattened (tile, channel, value)
    tiles = values.reshape(batch, grid_h, tile_h, grid_w, tile_w, channels)
    tile_index = (xp.arange(batch)[:, None, None, None, None, None] * grid_h
                  + xp.arange(grid_h)[None, :, None, None, None, None]) * grid_w \
        + xp.arange(grid_w)[None, None, None, :, None, None]
    flat = ((tile_index * channels + xp.arange(channels)) * _BINS + tiles).ravel()
    count = batch * grid_h * grid_w * channels * _BINS
    hists = xp.bincount(flat, minlength=count).astype(xp.float32).reshape(batch, grid_h, grid_w, channels, _BINS)

    area = tile_h * tile_w
    if clip_limit > 0:
        limit = np.float32(clip_limit * area / 256.0)
        clipped = xp.minimum(hists, limit)
        excess = xp.sum(hists - clipped, axis=-1, keepdims=True)
        hists = clipped + excess / np.float32(256.0)
    cdf = xp.cumsum(hists, axis=-1)
    cdf_min = xp.min(cdf, axis=-1, keepdims=True)
    denominator = np.float32(area) - cdf_min
    denominator = xp.where(denominator == 0, np.float32(1), denominator)
    tables = xp.clip((cdf - cdf_min) * np.float32(255.0) / denominator, 0, 255)
    # one tile of edge copies around the grid, so that every pixel has four neighbouring tables
    tables = xp.pad(tables, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0)), mode="edge")

    def neighbours(size, tile, grid):
        pos = (xp.arange(size, dtype=xp.float32) - np.float32(tile / 2.0)) / np.float32(tile) + np.float32(1)
        low = xp.floor(pos)
        weight = pos - low
        return (xp.clip(low, 0, grid + 1).astype(xp.int64), xp.clip(low + 1, 0, grid + 1).astype(xp.int64),
                weight)

    y0, y1, wy = neighbours(tile_h * grid_h, tile_h, grid_h)
    x0, x1, wx = neighbours(tile_w * grid_w, tile_w, grid_w)
    stride_x = channels * _BINS
    stride_y = stride_x * (grid_w + 2)
    stride_b = stride_y * (grid_h + 2)
    base = (xp.arange(batch)[:, None, None, None] * stride_b + xp.arange(channels)[None, None, None, :] * _BINS
            + values)
    rows0, rows1 = (y0 * stride_y)[None, :, None, None], (y1 * stride_y)[None, :, None, None]
    cols0, cols1 = (x0 * stride_x)[None, None, :, None], (x1 * stride_x)[None, None, :, None]
    wy, wx = wy[None, :, None, None], wx[None, None, :, None]
    flat_tables = tables.ravel()
    top = flat_tables[base + rows0 + cols0] * (1 - wx) + flat_tables[base + rows0 + cols1] * wx
    bottom = flat_tables[base + rows1 + cols0] * (1 - wx) + flat_tables[base + rows1 + cols1] * wx
    out = top * (1 - wy) + bottom * wy
    return out[:, :height, :width, :]


class ContrastLimitedAdaptiveHistogramEqualization(ImageLayer):
    """Contrast limited adaptive histogram equalization (CLAHE) of each image and channel."""

    def __init__(self, value_range=(0, 255), clip_limit=4.0, tile_grid_size=(8, 8), data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        _value_range(self, value_range)
        self.value_range = value_range  # as given: Keras neither sorts nor converts it
        if not _number(clip_limit):
            raise self._error(f"`clip_limit` must be a number (0 or less: no clipping). Received: "
                              f"clip_limit={clip_limit!r}")
        self.clip_limit = clip_limit
        if (not isinstance(tile_grid_size, (tuple, list)) or len(tile_grid_size) != 2
                or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                           for v in tile_grid_size)):
            raise self._error(f"`tile_grid_size` must be a pair of positive integers (rows, columns). Received: "
                              f"tile_grid_size={tile_grid_size!r}")
        self.tile_grid_size = tuple(int(v) for v in tile_grid_size)

    def call(self, inputs, training=True):
        if isinstance(inputs, dict):
            return self._call_dict(inputs, training)
        single = inputs.ndim == 3
        x = inputs.data[None] if single else inputs.data
        x = _to_range(x.astype(np.float32, copy=False), self.value_range, (0, 255))
        out = _to_range(clahe(x, self.clip_limit, self.tile_grid_size), (0, 255), self.value_range)
        return Tensor(out[0] if single else out)  # a constant: no gradient, as in Keras

    def get_config(self):
        return {**super().get_config(), "value_range": self.value_range, "clip_limit": self.clip_limit,
                "tile_grid_size": self.tile_grid_size}
