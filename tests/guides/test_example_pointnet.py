"""Patterns of keras.io's PointNet example: Conv1D(kernel 1) + BatchNormalization(momentum=0.0) + relu
blocks, a T-net whose Dense starts at the identity (Constant(np.eye(k).flatten()) bias, zero kernel) with
an orthogonality activity regularizer written with ops.tensordot, Dot(axes=(2, 1)) applying the learned
transform, GlobalMaxPooling1D, keras.random.shuffle / uniform jitter in the input pipeline, and a save /
load with the custom regularizer."""

import json

import numpy as np

import dlgpu as keras
from dlgpu import layers, ops


@keras.saving.register_keras_serializable(package="pointnet_test")
class Orthogonality(keras.regularizers.Regularizer):
    def __init__(self, num_features, l2reg=0.001):
        self.num_features = num_features
        self.l2reg = l2reg
        self.eye = ops.eye(num_features)

    def __call__(self, x):
        x = ops.reshape(x, (-1, self.num_features, self.num_features))
        xxt = ops.reshape(ops.tensordot(x, x, axes=(2, 2)), (-1, self.num_features, self.num_features))
        return ops.sum(self.l2reg * ops.square(xxt - self.eye))

    def get_config(self):
        return {"num_features": self.num_features, "l2reg": self.l2reg}


def conv_bn(x, filters):
    x = layers.Conv1D(filters, kernel_size=1, padding="valid")(x)
    return layers.Activation("relu")(layers.BatchNormalization(momentum=0.0)(x))


def tnet(inputs, k):
    x = layers.GlobalMaxPooling1D()(conv_bn(conv_bn(inputs, 8), 16))
    x = layers.Dense(k * k, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(np.eye(k).flatten()),
                     activity_regularizer=Orthogonality(k))(x)
    return layers.Dot(axes=(2, 1))([inputs, layers.Reshape((k, k))(x)])


def test_identity_bias_config_is_json_and_starts_as_identity():
    init = keras.initializers.Constant(np.eye(3).flatten())
    config = json.loads(json.dumps(init.get_config()))
    assert config["value"]["class_name"] == "__numpy__"  # as Keras writes an array value
    again = keras.initializers.Constant.from_config(config)
    np.testing.assert_array_equal(again((9,)), np.eye(3).flatten().astype("float32"))
    assert keras.initializers.Constant.from_config({"value": 2.5})((2,)).tolist() == [2.5, 2.5]

    inputs = keras.Input((5, 3))
    transformed = keras.Model(inputs, tnet(inputs, 3))
    points = np.random.default_rng(0).standard_normal((2, 5, 3)).astype("float32")
    np.testing.assert_allclose(transformed.predict(points, verbose=0), points, rtol=1e-6)  # the identity at first
    transformed(points[:1])
    assert [float(loss) for loss in transformed.losses] == [0.0]  # one identity transform: orthogonal
    transformed(points)
    # Two at once: tensordot pairs every transform with every other and the reshape mixes the blocks, as
    # the example's formula does in Keras too.
    flat = np.tile(np.eye(3).flatten(), (2, 1)).reshape(2, 3, 3)
    mixed = np.tensordot(flat, flat, axes=(2, 2)).reshape(-1, 3, 3)
    penalty = 0.001 * np.square(mixed - np.eye(3)).sum() / 2  # Keras divides an activity penalty by the batch
    np.testing.assert_allclose(float(transformed.losses[0]), penalty, rtol=1e-6)


def test_dot_regularizer_and_batchnorm_momentum_zero_against_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 4, 3)).astype("float32"), rng.standard_normal((2, 3, 3)).astype("float32")
    np.testing.assert_allclose(layers.Dot(axes=(2, 1))([a, b]).numpy(), np.einsum("bij,bjk->bik", a, b), rtol=1e-5)
    flat = rng.standard_normal((1, 9)).astype("float32")
    m = flat.reshape(3, 3)
    np.testing.assert_allclose(float(Orthogonality(3, 0.1)(flat)), 0.1 * np.square(m @ m.T - np.eye(3)).sum(),
                               rtol=1e-5)
    bn = layers.BatchNormalization(momentum=0.0)
    x = rng.standard_normal((6, 5, 2)).astype("float32") * 3 + 1
    bn(x, training=True)
    np.testing.assert_allclose(bn.moving_mean.numpy(), x.mean(axis=(0, 1)), rtol=1e-5)  # the last batch only
    np.testing.assert_allclose(bn.moving_variance.numpy(), x.var(axis=(0, 1)), rtol=1e-4)


class Clouds(keras.utils.PyDataset):
    def __init__(self, points, labels, augment, **kwargs):
        super().__init__(**kwargs)
        self.points, self.labels, self.augment = points, labels, augment

    def __len__(self):
        return len(self.points) // 8

    def __getitem__(self, index):
        points = self.points[index * 8:(index + 1) * 8].copy()
        if self.augment:
            points = [ops.convert_to_numpy(keras.random.shuffle(p + keras.random.uniform(p.shape, -0.005, 0.005)))
                      for p in points]
        return np.stack(points), self.labels[index * 8:(index + 1) * 8]


def test_pointnet_trains_and_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 32)
    points = (rng.standard_normal((32, 16, 3)) * (1 + 2 * labels[:, None, None])).astype("float32")
    shuffled = ops.convert_to_numpy(keras.random.shuffle(points[0]))
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, points[0]))  # rows permuted, each kept whole

    inputs = keras.Input((16, 3))
    x = tnet(inputs, 3)
    x = tnet(conv_bn(x, 8), 8)
    x = layers.Dropout(0.3)(layers.GlobalMaxPooling1D()(conv_bn(x, 16)))
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(x), name="pointnet")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  metrics=["sparse_categorical_accuracy"])
    history = model.fit(Clouds(points, labels, True), epochs=4, validation_data=Clouds(points, labels, False),
                        verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert "val_sparse_categorical_accuracy" in history

    path = tmp_path / "pointnet.keras"
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(points, verbose=0), model.predict(points, verbose=0), rtol=1e-5, atol=1e-6)
    assert sum(isinstance(getattr(layer, "activity_regularizer", None), Orthogonality) for layer in again.layers) == 2
