"""Patterns of keras.io's ViT example: patches cut by keras.ops.image.extract_patches inside a custom
layer, a PatchEncoder (Dense projection plus a learned position Embedding of ops.arange), pre-norm
MultiHeadAttention blocks, AdamW with weight_decay, top-5 accuracy, and the best weights kept by
ModelCheckpoint(save_best_only, save_weights_only) then loaded back."""

import numpy as np
import pytest
import torch

import dlgpu as keras
from dlgpu import layers, ops


def _identity_kernel_patches(x, size, strides, padding, dilation):
    """Keras's own definition: a convolution with an identity kernel (here dlgpu's ops.conv)."""
    (ph, pw), channels = size, x.shape[-1]
    kernel = np.eye(ph * pw * channels, dtype=np.float32).reshape(ph, pw, channels, -1)
    return keras.to_numpy(ops.conv(x, kernel, strides=strides, padding=padding, dilation_rate=dilation))


@pytest.mark.parametrize("shape,size,strides,padding,dilation", [
    ((2, 12, 12, 3), (4, 4), None, "valid", 1),       # the ViT case: non-overlapping
    ((1, 11, 9, 2), (3, 2), (2, 1), "same", 1),        # overlapping, uneven padding
    ((2, 10, 10, 1), (3, 3), (1, 1), "valid", 2),      # dilated
    ((1, 7, 5, 4), (7, 5), None, "valid", 1),          # one patch is the whole image
])
def test_extract_patches_matches_the_identity_kernel_convolution(shape, size, strides, padding, dilation):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    got = ops.image.extract_patches(x, size, strides=strides, dilation_rate=dilation, padding=padding)
    want = _identity_kernel_patches(x, size, strides or size, padding, dilation)
    assert got.shape == want.shape and got.dtype == "float32"
    np.testing.assert_array_equal(keras.to_numpy(got), want)


def test_extract_patches_values_and_gradient_against_torch_unfold():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 8, 6, 3)).astype(np.float32)
    upstream = rng.normal(size=(2, 3, 2, 3 * 3 * 3)).astype(np.float32)  # 3x3 windows, stride 2: they overlap
    xv = keras.Variable(x)
    with keras.GradientTape() as tape:
        patches = ops.image.extract_patches(xv, 3, strides=2)
        loss = ops.sum(patches * upstream)
    grad = keras.to_numpy(tape.gradient(loss, xv))

    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    cols = torch.nn.functional.unfold(xt, kernel_size=3, stride=2)                # (B, C*3*3, L), C slowest
    ref = cols.reshape(2, 3, 3, 3, 3, 2).permute(0, 4, 5, 2, 3, 1).reshape(2, 3, 2, 27)  # (B, oh, ow, ph*pw*C)
    (ref * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(keras.to_numpy(patches), ref.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)


def test_extract_patches_single_image_dtype_and_bad_arguments():
    image = np.arange(6 * 6 * 2, dtype=np.uint8).reshape(6, 6, 2)
    patches = ops.image.extract_patches(image, 3)
    assert patches.shape == (2, 2, 18) and patches.dtype == "uint8"
    np.testing.assert_array_equal(keras.to_numpy(patches)[1, 0], image[3:6, 0:3].reshape(-1))
    with pytest.raises(ValueError, match="extract_patches_3d.*rank 4"):  # three sizes: patches of volumes
        ops.image.extract_patches(image, (2, 2, 2))
    with pytest.raises(TypeError, match="size"):
        ops.image.extract_patches(image, (2, 2, 2, 2))
    with pytest.raises(ValueError, match="rank"):
        ops.image.extract_patches(np.zeros((6, 6)), 2)
    first = ops.image.extract_patches(image.transpose(2, 0, 1), 3, data_format="channels_first")
    np.testing.assert_array_equal(keras.to_numpy(first), keras.to_numpy(patches).transpose(2, 0, 1))


class Patches(layers.Layer):
    def __init__(self, patch_size, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size

    def call(self, images):
        n, h, w, c = ops.shape(images)
        cut = ops.image.extract_patches(images, size=self.patch_size)
        p = self.patch_size
        return ops.reshape(cut, (n, (h // p) * (w // p), p * p * c))

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


class PatchEncoder(layers.Layer):
    def __init__(self, num_patches, projection_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_patches = num_patches
        self.projection = layers.Dense(projection_dim)
        self.position_embedding = layers.Embedding(input_dim=num_patches, output_dim=projection_dim)

    def call(self, patch):
        positions = ops.expand_dims(ops.arange(start=0, stop=self.num_patches, step=1), axis=0)
        return self.projection(patch) + self.position_embedding(positions)


def _tiny_vit(x_train, image_size=8, patch=4, dim=8, classes=6):
    augment = keras.Sequential([layers.Normalization(), layers.Resizing(image_size, image_size),
                                layers.RandomFlip("horizontal"), layers.RandomRotation(factor=0.02),
                                layers.RandomZoom(height_factor=0.2, width_factor=0.2)], name="data_augmentation")
    augment.layers[0].adapt(x_train)
    inputs = keras.Input(shape=x_train.shape[1:])
    tokens = PatchEncoder((image_size // patch) ** 2, dim)(Patches(patch)(augment(inputs)))
    x1 = layers.LayerNormalization(epsilon=1e-6)(tokens)
    attended = layers.MultiHeadAttention(num_heads=2, key_dim=dim, dropout=0.1)(x1, x1)
    x2 = layers.Add()([attended, tokens])
    x3 = layers.Dense(dim, activation=keras.activations.gelu)(layers.LayerNormalization(epsilon=1e-6)(x2))
    x = layers.Flatten()(layers.LayerNormalization(epsilon=1e-6)(layers.Add()([x3, x2])))
    return keras.Model(inputs, layers.Dense(classes)(layers.Dropout(0.5)(x)))


def test_tiny_vit_trains_with_adamw_and_keeps_its_best_weights(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (48, 12, 12, 3)).astype("uint8")
    y = rng.integers(0, 6, (48, 1))
    model = _tiny_vit(x)
    assert model.get_layer("data_augmentation").output.shape == (None, 8, 8, 3)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=3e-3, weight_decay=1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                           keras.metrics.SparseTopKCategoricalAccuracy(5, name="top-5-accuracy")])
    path = str(tmp_path / "best.weights.h5")
    best = keras.callbacks.ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True,
                                           save_weights_only=True)
    history = model.fit(x, y, batch_size=16, epochs=4, validation_split=0.25, callbacks=[best], verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert set(history.history) >= {"val_accuracy", "val_top-5-accuracy"}
    model.load_weights(path)
    loss, accuracy, top5 = model.evaluate(x, y, verbose=0)
    assert 0 <= accuracy <= top5 <= 1 and np.isfinite(loss)
