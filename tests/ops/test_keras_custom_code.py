"""Custom Keras code written against keras.ops (a layer, a loss, a metric) runs on dlgpu: trained with fit,
saved and loaded."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.models import load_model


class CausalSelfAttention(layers.Layer):
    """The kind of layer people write by hand: ops.dot_product_attention, ops.tril, ops.glu."""

    def __init__(self, heads=2, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads

    def build(self, input_shape):
        width = input_shape[-1]
        self.qkv = self.add_weight(shape=(width, 3 * width), initializer="glorot_uniform", name="qkv")
        self.gate = self.add_weight(shape=(width, 2 * width), initializer="glorot_uniform", name="gate")

    def call(self, x):
        batch, steps, width = ops.shape(x)
        q, k, v = ops.split(ops.matmul(x, self.qkv), 3, axis=-1)
        q, k, v = (ops.reshape(t, (batch, steps, self.heads, width // self.heads)) for t in (q, k, v))
        mask = ops.cast(ops.tril(ops.ones((steps, steps))), "bool")
        attended = ops.dot_product_attention(q, k, v, mask=mask[None, None])
        attended = ops.reshape(attended, (batch, steps, width))
        return ops.glu(ops.matmul(attended, self.gate)) + x

    def get_config(self):
        return {**super().get_config(), "heads": self.heads}


def smoothed_loss(y_true, y_pred):
    """A hand-written loss: label-smoothed cross-entropy from ops.multi_hot and ops.categorical_crossentropy."""
    classes = ops.shape(y_pred)[-1]
    target = ops.multi_hot(ops.expand_dims(ops.cast(y_true, "int32"), -1), classes) * 0.9 + 0.1 / classes
    return ops.mean(ops.categorical_crossentropy(target, y_pred, from_logits=True))


def test_custom_attention_layer_and_loss_train_save_and_load(tmp_path):
    dlgpu.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 6, 8)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int32)  # needs the causal attention to pool the steps
    model = dlgpu.Sequential([dlgpu.Input((6, 8)), CausalSelfAttention(2), layers.GlobalAveragePooling1D(),
                              layers.Dense(2)])
    model.compile(optimizer=dlgpu.optimizers.Adam(0.01), loss=smoothed_loss)
    history = model.fit(x, y, epochs=6, batch_size=32, verbose=0).history
    assert history["loss"][-1] < 0.7 * history["loss"][0], history["loss"]
    assert (np.argmax(model.predict(x, verbose=0), -1) == y).mean() > 0.85

    path = tmp_path / "custom.dlgpu"
    with pytest.warns(UserWarning, match="smoothed_loss"):  # a loss function is code: dlgpu does not save it
        model.save(path)
    loaded = load_model(path, custom_objects={"CausalSelfAttention": CausalSelfAttention,
                                              "smoothed_loss": smoothed_loss})
    np.testing.assert_allclose(loaded.predict(x[:16], verbose=0), model.predict(x[:16], verbose=0), rtol=1e-6)
