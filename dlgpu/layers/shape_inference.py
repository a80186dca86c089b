"""Output shapes by running a layer on zeros (Layer.compute_output_shape's default, and symbolic calls of
layers without a formula), and the walks over structures whose leaves are shapes."""

from __future__ import annotations

import numpy as np

from dlgpu.layers.keras_tensor import flatten, map_structure


def _is_shape(obj):
    return isinstance(obj, tuple) and all(s is None or isinstance(s, (int, np.integer)) for s in obj)


# The unknown non-batch size used for the second run of shape inference: odd and larger than 1, so that
# sizes such as t // 2, ceil(t / 4) or t - 2 come out different from the first run's (t = 1).
_SECOND_RUN_STEPS = 7


def _all_layers(layer):
    yield layer
    for inner in layer._layers:
        yield from _all_layers(inner)


def _shapes_by_running(run, input_shapes, layer):
    """Output shapes of ``run(steps)`` (the layer called on zeros, unknown non-batch sizes read as
    ``steps``): the batch axis unknown, as in Keras, and every axis that changes with the unknown input
    sizes unknown too, as Keras's symbolic tracing keeps it (a (None, None, 4) input through a
    time-wise layer gives (None, None, units), not (None, 1, units)).  A second run is made only when
    some non-batch input size is unknown."""
    first = run(1)
    shapes = map_structure(lambda t: (None,) + tuple(t.shape[1:]), first)
    leaves = [s for s in _flat_shapes(input_shapes) if s is not None]
    if not any(None in tuple(s)[1:] for s in leaves):
        return shapes
    # add_loss terms of the extra run are dropped: one symbolic call adds what one call adds
    kept = [(inner, len(inner._losses)) for inner in _all_layers(layer)]
    try:
        second = flatten(run(_SECOND_RUN_STEPS))
    except Exception:  # a call that only works at the first size keeps the first run's shapes, as before
        return shapes
    finally:
        for inner, count in kept:
            del inner._losses[count:]
    flat_first = flatten(first)
    if len(second) != len(flat_first):
        return shapes
    merged = iter([(None,) + tuple(None if a != b else a for a, b in zip(t1.shape[1:], t2.shape[1:]))
                   if len(t1.shape) == len(t2.shape) else (None,) + tuple(t1.shape[1:])
                   for t1, t2 in zip(flat_first, second)])
    return map_structure(lambda _: next(merged), first)


def _flat_shapes(structure):
    if structure is None or _is_shape(structure):
        return [structure]
    if isinstance(structure, (list, tuple)):
        return [s for item in structure for s in _flat_shapes(item)]
    if isinstance(structure, dict):
        return [s for item in structure.values() for s in _flat_shapes(item)]
    return [structure]


def _map_shapes(fn, structure):
    """map_structure whose leaves are shapes: a layer with several outputs returns a tuple or list of shapes,
    and plain map_structure would walk into each shape's entries."""
    if _is_shape(structure):
        return fn(structure)
    if isinstance(structure, (list, tuple)):
        return type(structure)(_map_shapes(fn, s) for s in structure)
    if isinstance(structure, dict):
        return {k: _map_shapes(fn, v) for k, v in structure.items()}
    return fn(structure)


def _to_list(obj):
    if isinstance(obj, (list, tuple)):
        return [_to_list(o) for o in obj]
    return obj


def _to_tuple(obj):
    if isinstance(obj, list) and all(o is None or isinstance(o, int) for o in obj):
        return tuple(obj)
    if isinstance(obj, list):
        return [_to_tuple(o) for o in obj]
    return obj
