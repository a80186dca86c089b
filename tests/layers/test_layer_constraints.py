"""Layers and Keras's weight constraints, seeded dropout, and activity-regularizer penalties.

Every layer with *_constraint arguments passes them to its weights, writes them to its config under
Keras's keys and keeps them through save/load; a seeded Dropout (and the other seeded dropouts) repeats
its masks from run to run, as Keras's SeedGenerator does; and every activity_regularizer penalty is
regularizer(output) / batch size, as Keras's Layer.__call__ (>= 3.14) computes it.
"""

import numpy as np
import pytest

import dlgpu
import dlgpu as keras
from dlgpu import constraints, layers, ops, regularizers
from dlgpu.models import load_model

rng = np.random.default_rng(31)

NN = constraints.NonNeg


# (factory, input shape, {weight attribute: constraint argument}) for every layer with constraint arguments
LAYERS = [
    (lambda: layers.Dense(3, kernel_constraint=NN(), bias_constraint=NN()), (2, 4),
     {"kernel": "kernel_constraint", "bias": "bias_constraint"}),
    (lambda: layers.Embedding(6, 3, embeddings_constraint=NN()), None, {"embeddings": "embeddings_constraint"}),
    (lambda: layers.Conv1D(3, 2, kernel_constraint=NN(), bias_constraint=NN()), (2, 5, 2),
     {"kernel": "kernel_constraint", "bias": "bias_constraint"}),
    (lambda: layers.Conv2D(3, 2, dilation_rate=2, kernel_constraint=NN(), bias_constraint=NN()), (2, 5, 5, 2),
     {"kernel": "kernel_constraint", "bias": "bias_constraint"}),
    (lambda: layers.Conv2DTranspose(3, 2, kernel_constraint=NN(), bias_constraint=NN()), (2, 3, 3, 2),
     {"kernel": "kernel_constraint", "bias": "bias_constraint"}),
    (lambda: layers.Conv1DTranspose(3, 2, kernel_constraint=NN()), (2, 4, 2), {"kernel": "kernel_constraint"}),
    (lambda: layers.DepthwiseConv2D(2, depthwise_constraint=NN(), bias_constraint=NN()), (2, 4, 4, 2),
     {"kernel": "depthwise_constraint", "bias": "bias_constraint"}),
    (lambda: layers.DepthwiseConv1D(2, depthwise_constraint=NN()), (2, 4, 2), {"kernel": "depthwise_constraint"}),
    (lambda: layers.SeparableConv2D(3, 2, depthwise_constraint=NN(), pointwise_constraint=NN(),
                                    bias_constraint=NN()), (2, 4, 4, 2),
     {"depthwise_kernel": "depthwise_constraint", "pointwise_kernel": "pointwise_constraint",
      "bias": "bias_constraint"}),
    (lambda: layers.SeparableConv1D(3, 2, pointwise_constraint=NN()), (2, 4, 2),
     {"pointwise_kernel": "pointwise_constraint"}),
    (lambda: layers.BatchNormalization(beta_constraint=NN(), gamma_constraint=NN()), (4, 3),
     {"beta": "beta_constraint", "gamma": "gamma_constraint"}),
    (lambda: layers.LayerNormalization(beta_constraint=NN(), gamma_constraint=NN()), (2, 3),
     {"beta": "beta_constraint", "gamma": "gamma_constraint"}),
    (lambda: layers.GroupNormalization(2, beta_constraint=NN(), gamma_constraint=NN()), (2, 3, 4),
     {"beta": "beta_constraint", "gamma": "gamma_constraint"}),
    (lambda: layers.SimpleRNN(3, kernel_constraint=NN(), recurrent_constraint=NN(), bias_constraint=NN()),
     (2, 3, 2), {"kernel": "kernel_constraint", "recurrent_kernel": "recurrent_constraint", "bias": "bias_constraint"}),
    (lambda: layers.LSTM(3, recurrent_constraint=NN()), (2, 3, 2), {"recurrent_kernel": "recurrent_constraint"}),
    (lambda: layers.GRU(3, kernel_constraint=NN(), bias_constraint=NN()), (2, 3, 2),
     {"kernel": "kernel_constraint", "bias": "bias_constraint"}),
]


def _inputs(layer, shape, generator=rng):
    if isinstance(layer, layers.Embedding):
        return generator.integers(0, 6, (2, 3))
    return generator.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("make,shape,expected", LAYERS, ids=[type(case[0]()).__name__ for case in LAYERS])
def test_layers_take_constraints_into_weights_config_and_training(make, shape, expected):
    local = np.random.default_rng(5)  # its own draws: the step below must push some weight negative
    layer = make()
    x = _inputs(layer, shape, local)
    layer(x)
    config = layer.get_config()
    constrained = []
    for attribute, argument in expected.items():
        variable = getattr(layer, attribute)
        assert isinstance(variable.constraint, constraints.NonNeg), (attribute, variable.constraint)
        assert config[argument] == constraints.serialize(NN())  # Keras's key, serialized
        constrained.append(variable)
    assert {w.constraint is None for w in layer.trainable_weights if all(w is not c for c in constrained)} <= {True}
    again = type(layer).from_config(config)
    again(x)
    assert again.get_config() == {**config, "name": again.name}
    # one large SGD step pushes weights negative; the constraint projects them back
    optimizer = keras.optimizers.SGD(10.0)
    with dlgpu.GradientTape() as tape:
        out = layer(x, training=True)
        loss = ops.sum(ops.multiply(out, local.standard_normal(out.shape).astype(np.float32)))
    grads = tape.gradient(loss, layer.trainable_weights)
    optimizer.apply(grads, layer.trainable_weights)
    for variable in constrained:
        assert variable.numpy().min() >= 0, variable.path
    assert any((v.numpy() == 0).any() for v in constrained)  # the projection had work to do


def test_multi_head_attention_constraints():
    mha = layers.MultiHeadAttention(2, 3, kernel_constraint=constraints.MaxNorm(0.5, axis=[0]),
                                    bias_constraint="non_neg")
    q = rng.standard_normal((2, 4, 5)).astype(np.float32)
    mha(q, q)
    assert len(mha.trainable_weights) == 8
    for w in mha.trainable_weights:
        kind = constraints.MaxNorm if w.path.endswith("kernel") else constraints.NonNeg
        assert isinstance(w.constraint, kind), w.path
    config = mha.get_config()
    assert config["kernel_constraint"]["config"] == {"max_value": 0.5, "axis": [0]}
    assert config["bias_constraint"]["class_name"] == "NonNeg"
    model_in = keras.Input((4, 5))
    model = keras.Model(model_in, layers.GlobalAveragePooling1D()(mha(model_in, model_in)))
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    model.fit(q, rng.standard_normal((2, 5)).astype(np.float32) * 10, epochs=3, verbose=0)
    for w in mha.trainable_weights:
        if w.path.endswith("bias"):
            assert w.numpy().min() >= 0
        else:
            assert np.linalg.norm(w.numpy(), axis=0).max() <= 0.5 + 1e-6


def test_dense_no_longer_drops_its_constraints():
    dense = layers.Dense(2, kernel_constraint="unit_norm", bias_constraint={"class_name": "MaxNorm",
                                                                            "config": {"max_value": 1.5}})
    dense.build((None, 3))
    assert isinstance(dense.kernel.constraint, constraints.UnitNorm)
    assert dense.bias.constraint.get_config() == {"max_value": 1.5, "axis": 0}
    assert dense.get_config()["kernel_constraint"]["class_name"] == "UnitNorm"
    assert layers.Dense(2).get_config()["kernel_constraint"] is None


def test_constrained_model_fit_save_load(tmp_path):
    keras.set_random_seed(5)
    model = keras.Sequential([
        keras.Input((6, 3)),
        layers.Conv1D(4, 3, padding="same", kernel_constraint=constraints.MaxNorm(1.0, axis=[0, 1])),
        layers.LayerNormalization(gamma_constraint="non_neg"),
        layers.LSTM(5, recurrent_constraint=constraints.UnitNorm(), bias_constraint=constraints.MinMaxNorm(0, 2)),
        layers.Dense(2, kernel_constraint=constraints.MaxNorm(0.7)),
    ])
    model.compile(optimizer="adam", loss="mse")
    x = rng.standard_normal((16, 6, 3)).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "constrained.dlgpu"
    model.save(path)
    loaded = load_model(path)
    for a, b in zip(model.layers, loaded.layers):
        assert a.get_config() == b.get_config()
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_array_equal(wa.numpy(), wb.numpy())
            assert (wa.constraint is None) == (wb.constraint is None)
            if wa.constraint is not None:
                assert type(wa.constraint) is type(wb.constraint)
                assert wa.constraint.get_config() == wb.constraint.get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
    conv, norm, lstm, dense = loaded.layers
    assert np.sqrt((conv.kernel.numpy() ** 2).sum(axis=(0, 1))).max() <= 1.0 + 1e-6
    assert norm.gamma.numpy().min() >= 0
    np.testing.assert_allclose(np.linalg.norm(lstm.recurrent_kernel.numpy(), axis=0), 1.0, rtol=1e-5)
    assert np.linalg.norm(dense.kernel.numpy(), axis=0).max() <= 0.7 + 1e-6


# -- seeded dropout ----------------------------------------------------------------------------------------

def test_seeded_dropout_repeats_its_masks_and_unseeded_is_unchanged():
    x = np.ones((6, 50), np.float32)
    a, b = layers.Dropout(0.5, seed=7), layers.Dropout(0.5, seed=7)
    first = [a(x, training=True).numpy() for _ in range(3)]
    second = [b(x, training=True).numpy() for _ in range(3)]
    for u, v in zip(first, second):
        np.testing.assert_array_equal(u, v)  # same seed: the same masks, call after call
    assert not np.array_equal(first[0], first[1])  # a stream: each step a new mask
    assert set(np.unique(first[0])) == {0.0, 2.0}
    np.testing.assert_array_equal(layers.Dropout(0.5, seed=8)(x, training=True).numpy() == 0,
                                  layers.Dropout(0.5, seed=8)(x, training=True).numpy() == 0)
    assert not np.array_equal(layers.Dropout(0.5, seed=8)(x, training=True).numpy(), first[0])
    # the global seed does not move a seeded layer's stream
    keras.set_random_seed(1)
    np.testing.assert_array_equal(layers.Dropout(0.5, seed=7)(x, training=True).numpy(), first[0])
    # without a seed: dlgpu's generator, reproducible through set_random_seed as before
    keras.set_random_seed(2)
    u = layers.Dropout(0.5)(x, training=True).numpy()
    keras.set_random_seed(2)
    np.testing.assert_array_equal(layers.Dropout(0.5)(x, training=True).numpy(), u)
    assert layers.Dropout(0.5, seed=7).get_config()["seed"] == 7


def test_seeded_spatial_recurrent_and_attention_dropout_repeat():
    img = np.ones((2, 3, 3, 8), np.float32)
    masks = [layers.SpatialDropout2D(0.5, seed=3)(img, training=True).numpy() for _ in range(2)]
    np.testing.assert_array_equal(*masks)
    seq = rng.standard_normal((2, 4, 3)).astype(np.float32)
    outs = []
    for _ in range(2):
        lstm = layers.LSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=9, kernel_initializer="ones",
                           recurrent_initializer="ones")
        outs.append(lstm(seq, training=True).numpy())
    np.testing.assert_array_equal(*outs)
    scores = []
    for _ in range(2):
        mha = layers.MultiHeadAttention(2, 3, dropout=0.5, seed=4, kernel_initializer="ones")
        scores.append(mha(seq, seq, training=True).numpy())
    np.testing.assert_array_equal(*scores)
    att = [layers.Attention(dropout=0.5, seed=4)([seq, seq], training=True).numpy() for _ in range(2)]
    np.testing.assert_array_equal(*att)


def test_seeded_dropout_model_trains_reproducibly():
    def train():
        keras.set_random_seed(12)  # the same initial weights; the masks come from the layer's seed
        model = keras.Sequential([keras.Input((5,)), layers.Dense(16, activation="relu"),
                                  layers.Dropout(0.5, seed=21), layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        x = np.random.default_rng(0).standard_normal((32, 5)).astype(np.float32)
        y = np.arange(32) % 3
        keras.set_random_seed(99)
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        return model.get_weights()
    for a, b in zip(train(), train()):
        np.testing.assert_array_equal(a, b)


def test_bad_seed():
    with pytest.raises(ValueError, match=r"'d' \(Dropout\).*seed.*'abc'"):
        layers.Dropout(0.5, seed="abc", name="d")
    with pytest.raises(ValueError, match=r"'r' \(GRU\).*seed=1.5"):
        layers.GRU(3, seed=1.5, name="r")


@pytest.mark.gpu
def test_seeded_dropout_on_gpu():
    x = np.ones((4, 64), np.float32)
    with dlgpu.device("gpu"):
        a = [layers.Dropout(0.5, seed=5)(x, training=True) for _ in range(2)]
        assert a[0].device.kind == "gpu"
        a = [t.numpy() for t in a]
        layer = layers.Dropout(0.5, seed=5)
        stream = [layer(x, training=True).numpy() for _ in range(2)]
    np.testing.assert_array_equal(*a)
    assert not np.array_equal(*stream)
    assert set(np.unique(a[0])) == {0.0, 2.0}


# -- activity regularizers: regularizer(output) / batch, every layer alike (Keras's Layer) ------------------

def _penalty(layer, *args, **kwargs):
    layer(*args, **kwargs)
    return sum(float(loss.numpy()) for loss in layer.losses if not isinstance(loss, float))


@pytest.mark.parametrize("batch", [1, 4])
def test_activity_penalty_divided_by_batch_as_activity_regularization_layer(batch):
    reg = regularizers.L1L2(l1=0.01, l2=0.1)
    x = rng.standard_normal((batch, 5)).astype(np.float32)
    dense = layers.Dense(3, activation="tanh", activity_regularizer=reg)
    out = dense(x).numpy()
    expected = (0.01 * np.abs(out).sum() + 0.1 * np.square(out).sum()) / batch
    assert len(dense.losses) == 1
    np.testing.assert_allclose(float(dense.losses[0].numpy()), expected, rtol=1e-5)
    # the same penalty as Dense without a regularizer followed by ActivityRegularization
    plain = layers.Dense(3, activation="tanh")
    plain.build((None, 5))
    plain.set_weights(dense.get_weights())
    np.testing.assert_allclose(_penalty(layers.ActivityRegularization(l1=0.01, l2=0.1), plain(x)), expected,
                               rtol=1e-5)


def test_activity_penalty_does_not_grow_with_the_batch():
    """One sample repeated n times gives the penalty of that one sample, for every layer kind."""
    reg = regularizers.L2(0.3)
    cases = [
        (lambda: layers.Dense(3, activity_regularizer=reg), (5,)),
        (lambda: layers.Conv2D(2, 2, activity_regularizer=reg), (4, 4, 3)),
        (lambda: layers.Conv2DTranspose(2, 2, activity_regularizer=reg), (3, 3, 2)),
        (lambda: layers.DepthwiseConv2D(2, activity_regularizer=reg), (4, 4, 2)),
        (lambda: layers.SeparableConv1D(2, 2, activity_regularizer=reg), (5, 2)),
        (lambda: layers.GRU(3, activity_regularizer=reg), (4, 2)),
        (lambda: layers.LSTM(3, return_sequences=True, activity_regularizer=reg), (4, 2)),
    ]
    for make, shape in cases:
        layer = make()
        one = rng.standard_normal((1,) + shape).astype(np.float32)
        single = _penalty(layer, one)
        repeated = _penalty(layer, np.repeat(one, 5, axis=0))
        assert single > 0
        np.testing.assert_allclose(repeated, single, rtol=1e-5, err_msg=type(layer).__name__)


def test_recurrent_activity_penalty_covers_the_states_as_keras():
    reg = regularizers.L2(0.5)
    lstm = layers.LSTM(3, return_state=True, activity_regularizer=reg)
    x = rng.standard_normal((2, 4, 2)).astype(np.float32)
    output, h, c = (t.numpy() for t in lstm(x))
    expected = sum(0.5 * np.square(t).sum() / 2 for t in (output, h, c))
    assert len(lstm.losses) == 3
    np.testing.assert_allclose(sum(float(loss.numpy()) for loss in lstm.losses), expected, rtol=1e-5)


def test_multi_head_attention_activity_penalty_per_projection():
    """Keras hands activity_regularizer to MHA's four EinsumDense sublayers: each projection's output is
    penalised, divided by the batch size."""
    reg = regularizers.L2(0.2)
    mha = layers.MultiHeadAttention(2, 3, activity_regularizer=reg)
    q = rng.standard_normal((3, 4, 5)).astype(np.float32)
    mha(q, q)
    assert len(mha.losses) == 4
    one = _penalty(mha, q[:1], q[:1])
    np.testing.assert_allclose(_penalty(mha, np.repeat(q[:1], 3, 0), np.repeat(q[:1], 3, 0)), one, rtol=1e-5)


def test_activity_penalty_in_training_loss():
    """fit's loss is the compiled loss plus the penalty divided by the batch size."""
    keras.set_random_seed(8)
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activity_regularizer=regularizers.L2(0.05),
                                                               kernel_initializer="ones")])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    x = rng.standard_normal((8, 4)).astype(np.float32)
    y = np.zeros((8, 3), np.float32)
    loss = model.evaluate(x, y, batch_size=8, verbose=0)
    out = model.predict(x, verbose=0)
    mse = np.mean(np.square(out))
    np.testing.assert_allclose(loss, mse + 0.05 * np.square(out).sum() / 8, rtol=1e-5)
