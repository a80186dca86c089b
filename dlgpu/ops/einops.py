"""keras.ops.rearrange: einops-style axis patterns, as one reshape, one transpose and one reshape (each
differentiable), as Keras's own version (keras/src/ops/einops.py).

Supported: named axes, groups "(h w)" on either side, sizes of split groups given as keyword arguments (one
axis per group may be left out and is inferred).  Not supported, and refused by name: "..." and anonymous
axes ("1"), which Keras's version does not take either.
"""

from __future__ import annotations

import math
import re

from dlgpu.ops._core import to_tensor

__all__ = ["rearrange"]

_TOKEN = re.compile(r"\(([^()]*)\)|(\S+)")


def _parse(side, pattern):
    """A pattern side as a list of groups, each a list of axis names."""
    groups = []
    for group, name in _TOKEN.findall(side):
        names = group.split() if group or not name else [name]
        for n in names:
            if not n.isidentifier():
                raise ValueError(f"rearrange: axis {n!r} in pattern {pattern!r} is not a name; '...', '1' and "
                                 f"nested groups are not supported")
        groups.append(names)
    return groups


def rearrange(tensor, pattern, **axes_lengths):
    """``rearrange(images, 'b h w c -> b (c h w)')``; ``rearrange(x, 'b (h1 h) w -> (b h1) h w', h1=2)``."""
    x = to_tensor(tensor)
    from dlgpu.ops.shape import reshape, transpose
    if not isinstance(pattern, str) or pattern.count("->") != 1:
        raise ValueError(f"rearrange: pattern must be a string 'input axes -> output axes'; received {pattern!r}")
    left, right = (_parse(side, pattern) for side in pattern.split("->"))
    inputs, outputs = [a for g in left for a in g], [a for g in right for a in g]
    if len(set(inputs)) != len(inputs) or sorted(inputs) != sorted(outputs):
        raise ValueError(f"rearrange: each axis must appear once on each side of {pattern!r}")
    unknown = set(axes_lengths) - set(inputs)
    if unknown:
        raise ValueError(f"rearrange: axes_lengths names axes {sorted(unknown)} that {pattern!r} does not have")
    if len(left) != x.ndim:
        raise ValueError(f"rearrange: {pattern!r} has {len(left)} input axes but the tensor has rank {x.ndim} "
                         f"(shape {x.data.shape})")
    sizes = {}
    for group, size in zip(left, x.data.shape):
        missing = [a for a in group if a not in axes_lengths]
        known = math.prod(int(axes_lengths[a]) for a in group if a in axes_lengths)
        if len(missing) > 1:
            raise ValueError(f"rearrange: group {group} of {pattern!r} leaves {missing} unknown; give all but "
                             f"one of their sizes as keyword arguments")
        if missing:
            if known == 0 or size % known:
                raise ValueError(f"rearrange: axis of size {size} cannot be split into {group} with "
                                 f"{ {a: axes_lengths[a] for a in group if a in axes_lengths} }")
            sizes[missing[0]] = size // known
        elif known != size:
            raise ValueError(f"rearrange: group {group} has size {known} but the axis has size {size}")
        sizes.update({a: int(axes_lengths[a]) for a in group if a in axes_lengths})
    split = [sizes[a] for a in inputs]
    if tuple(split) != x.data.shape:
        x = reshape(x, split)
    order = [inputs.index(a) for a in outputs]
    if order != list(range(len(order))):
        x = transpose(x, order)
    merged = tuple(math.prod(sizes[a] for a in g) for g in right)
    return x if merged == x.data.shape else reshape(x, merged)
