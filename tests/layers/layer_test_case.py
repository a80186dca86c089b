"""run_layer_test: the contract every layer keeps (Keras's keras/src/testing/test_case.py, cut to what we use).

Checks, in order: output shape from an eager call and from compute_output_shape; weight counts and
shapes; symbolic call on an Input gives the same shape (batch None); get_config -> from_config (and
layers.serialize -> deserialize) rebuilds a layer that, given the same weights, computes the same output;
trainable=False moves every weight to non_trainable; one gradient step changes every trainable weight.
"""

from __future__ import annotations

import numpy as np

import dlgpu
from dlgpu import layers, ops


def _random(shape, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 5, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _shape_of(out):
    return [tuple(o.shape) for o in _as_list(out)]


def run_layer_test(layer_cls, init_kwargs, input_shape, expected_output_shape, *,
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
                   expected_weight_shapes=None, input_dtype="float32", run_training_step=None,
                   deterministic=True):
    """``input_shape`` is a full shape (with batch) or a list of them for multi-input layers."""
    multi = isinstance(input_shape, list)
    shapes = input_shape if multi else [input_shape]
    data = [_random(s, input_dtype, seed=i) for i, s in enumerate(shapes)]
    x = data if multi else data[0]

    # 1. eager call: shape, and compute_output_shape agrees with it
    layer = layer_cls(**init_kwargs)
    out = layer(x)
    assert layer.built, f"{layer_cls.__name__} is not built after its first call"
    assert _shape_of(out) == [tuple(expected_output_shape)], (_shape_of(out), expected_output_shape)
    computed = layer.compute_output_shape([tuple(s) for s in shapes] if multi else tuple(shapes[0]))
    assert tuple(computed) == tuple(expected_output_shape)

    # 2. weights
    assert len(layer.trainable_weights) == expected_num_trainable_weights, \
        [w.path for w in layer.trainable_weights]
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, \
        [w.path for w in layer.non_trainable_weights]
    assert len(layer.weights) == expected_num_trainable_weights + expected_num_non_trainable_weights
    if expected_weight_shapes is not None:
        assert [tuple(w.shape) for w in layer.weights] == [tuple(s) for s in expected_weight_shapes]
    for w in layer.weights:
        assert w.dtype == "float32", f"{w.path} is {w.dtype}: float32 is the default"

    # 3. symbolic call on Input: batch axis None, rest as computed
    sym_inputs = [dlgpu.Input(shape=s[1:], dtype=input_dtype) for s in shapes]
    sym_out = layer_cls(**init_kwargs)(sym_inputs if multi else sym_inputs[0])
    assert isinstance(sym_out, layers.KerasTensor)
    assert sym_out.shape == (None,) + tuple(expected_output_shape[1:])

    # 4. config round trip (class.from_config, and layers.deserialize by class name)
    config = layer.get_config()
    import json
    json.dumps(config)  # must be JSON-serialisable to be saved
    ref = _as_list(layer(x, training=False))
    for clone in (layer_cls.from_config(config), layers.deserialize(layers.serialize(layer))):
        clone(x)  # build
        clone.set_weights(layer.get_weights())
        got = _as_list(clone(x, training=False))
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
        assert clone.get_config() == config

    # 5. trainable=False freezes every weight
    if layer.weights:
        layer.trainable = False
        assert layer.trainable_weights == []
        assert len(layer.non_trainable_weights) == len(layer.weights)
        layer.trainable = True
        assert len(layer.trainable_weights) == expected_num_trainable_weights

    # 6. one training step (SGD by hand, so the test depends only on the tape) changes every trainable weight
    if run_training_step is None:
        run_training_step = expected_num_trainable_weights > 0
    if run_training_step:
        before = [w.numpy().copy() for w in layer.trainable_weights]
        with dlgpu.GradientTape() as tape:
            y = layer(x, training=True)
            # minus 0.5: a symmetric loss would give BatchNormalization's beta a zero gradient
            loss = ops.sum(ops.square(ops.subtract(y if not isinstance(y, (list, tuple)) else y[0], 0.5)))
        grads = tape.gradient(loss, layer.trainable_weights)
        for w, g in zip(layer.trainable_weights, grads):
            assert g is not None, f"no gradient reached {w.path}"
            assert tuple(g.shape) == tuple(w.shape)
            w.assign(w.numpy() - 0.01 * g.numpy())
        for w, b in zip(layer.trainable_weights, before):
            assert not np.allclose(w.numpy(), b), f"{w.path} did not change after a training step"
    return layer
