"""Patterns of keras.io's ShiftViT example: channel groups "shifted" by a pixel with
ops.image.crop_images + pad_images (which, as the example writes them, zero a border), sublayers kept in Python lists filled in build() or __init__ (they
must be tracked for their weights to train and save), a subclassed model whose train_step asks a
GradientTape for the gradients of a list of per-layer variable lists, Keras 2's compiled_loss /
compiled_metrics, a warm-up cosine LearningRateSchedule written with ops, and a get_config holding layers."""

import warnings

import numpy as np

import dlgpu as keras
from dlgpu import layers, ops

SHIFTS = {"left": (0, 0, 0, 1), "right": (0, 1, 0, 1), "up": (0, 0, 1, 0), "down": (1, 0, 1, 0)}


def shift(x, mode, height, width):
    top, left, cut_h, cut_w = SHIFTS[mode]
    crop = ops.image.crop_images(x, top_cropping=top, left_cropping=left, target_height=height - cut_h,
                                 target_width=width - cut_w)
    return ops.image.pad_images(crop, top_padding=top, left_padding=left, target_height=height, target_width=width)


def test_crop_then_pad_at_the_same_offset_zeroes_one_border():
    """The example crops and pads back at the same offset, so each "shift" keeps the pixels in place and
    zeroes one border row or column (left: the last column; down: the first row)."""
    x = np.arange(2 * 4 * 5 * 1, dtype="float32").reshape(2, 4, 5, 1) + 1
    borders = {"left": (slice(None), slice(None), slice(-1, None)), "right": (slice(None), slice(None), slice(0, 1)),
               "up": (slice(None), slice(-1, None)), "down": (slice(None), slice(0, 1))}
    for mode, border in borders.items():
        want = x.copy()
        want[border] = 0
        np.testing.assert_array_equal(shift(x, mode, 4, 5).numpy(), want, err_msg=mode)
    crop = ops.image.crop_images(x, top_cropping=1, left_cropping=2, target_height=2, target_width=3)
    np.testing.assert_array_equal(crop.numpy(), x[:, 1:3, 2:5])
    padded = ops.image.pad_images(crop, top_padding=1, left_padding=0, target_height=4, target_width=4)
    np.testing.assert_array_equal(padded.numpy(), np.pad(x[:, 1:3, 2:5], ((0, 0), (1, 1), (0, 1), (0, 0))))
    pieces = ops.split(np.zeros((1, 2, 2, 12), "float32"), indices_or_sections=4, axis=-1)
    assert len(pieces) == 4 and all(p.shape == (1, 2, 2, 3) for p in pieces)


class ShiftBlock(layers.Layer):
    def build(self, input_shape):
        self.h, self.w, self.c = input_shape[1:]
        self.norm = layers.LayerNormalization(epsilon=1e-5)
        self.mlp = keras.Sequential([layers.Dense(2 * self.c, activation="gelu"), layers.Dense(self.c)])

    def call(self, x):
        parts = ops.split(x, indices_or_sections=self.c // 2, axis=-1)
        for i, mode in enumerate(("left", "right", "up", "down")):
            parts[i] = shift(parts[i], mode, self.h, self.w)
        x = ops.concatenate(parts, axis=-1)
        return x + self.mlp(self.norm(x))


class Stage(layers.Layer):
    def __init__(self, depth, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth

    def build(self, input_shape):
        self.blocks = list()  # filled after the assignment: only a tracked list keeps them
        for _ in range(self.depth):
            self.blocks.append(ShiftBlock())

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return x

    def get_config(self):
        return {**super().get_config(), "depth": self.depth}


class Net(keras.Model):
    def __init__(self, depths, **kwargs):
        super().__init__(**kwargs)
        self.project = layers.Conv2D(8, 2, strides=2)
        self.stages = []
        for depth in depths:
            self.stages.append(Stage(depth))
        self.pool = layers.GlobalAveragePooling2D()
        self.head = layers.Dense(3)

    def get_config(self):
        return {**super().get_config(), "project": self.project, "stages": self.stages, "head": self.head}

    def _forward(self, images):
        x = self.project(images)
        for stage in self.stages:
            x = stage(x)
        return self.head(self.pool(x))

    def call(self, images):
        return self._forward(images)

    def train_step(self, data):
        images, labels = data
        with keras.GradientTape() as tape:
            logits = self._forward(images)
            loss = self.compiled_loss(labels, logits)
        groups = [self.project.trainable_variables, self.pool.trainable_variables, self.head.trainable_variables]
        groups += [stage.trainable_variables for stage in self.stages]
        grads = tape.gradient(loss, groups)
        assert [len(g) for g in grads] == [len(v) for v in groups]
        self.optimizer.apply_gradients([(g, v) for gs, vs in zip(grads, groups) for g, v in zip(gs, vs)])
        self.compiled_metrics.update_state(labels, logits)
        return {m.name: m.result() for m in self.metrics}


class WarmCosine(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, start, peak, warmup, total):
        super().__init__()
        self.start, self.peak, self.warmup, self.total = start, peak, warmup, total

    def __call__(self, step):
        step = ops.cast(step, "float32")
        cosine = 0.5 * self.peak * (1 + ops.cos(np.pi * (step - self.warmup) / (self.total - self.warmup)))
        warm = self.start + (self.peak - self.start) / self.warmup * step
        return ops.where(step > self.total, 0.0, ops.where(step < self.warmup, warm, cosine))

    def get_config(self):
        return {"start": self.start, "peak": self.peak, "warmup": self.warmup, "total": self.total}


def test_lists_filled_later_are_tracked_and_nested_gradients_train(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images, labels = rng.random((24, 8, 8, 3)).astype("float32"), rng.integers(0, 3, (24, 1))
    model = Net([1, 2])
    model(images[:2])
    # project (2) + 3 blocks x (norm 2 + mlp 4) + head (2): every list-held block counts
    assert len(model.trainable_weights) == 2 + 3 * 6 + 2
    assert len(model.stages[1].blocks) == 2 and len(model.stages[1].trainable_weights) == 12
    schedule = WarmCosine(1e-4, 1e-2, warmup=2, total=12)
    assert float(schedule(0)) == np.float32(1e-4) and float(schedule(13)) == 0.0
    np.testing.assert_allclose(float(schedule(2)), 1e-2, rtol=1e-6)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                           keras.metrics.SparseTopKCategoricalAccuracy(2, name="top-2-accuracy")])
    before = [w.numpy().copy() for w in model.trainable_weights]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        history = model.fit(images, labels, batch_size=8, epochs=3, verbose=0,
                            callbacks=[keras.callbacks.EarlyStopping(monitor="accuracy", patience=5)]).history
    assert all(not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    assert set(history) == {"loss", "accuracy", "top-2-accuracy"} and history["loss"][-1] < history["loss"][0]
    logits = model.predict(images[:8], verbose=0)
    assert logits.shape == (8, 3)
    model.save(tmp_path / "net.dlgpu")  # the config holds layers: serialized, not a JSON error


def test_tape_gradient_answers_in_the_sources_structure():
    a = keras.Variable(np.array([1.0, 2.0], "float32"))
    b = keras.Variable(np.array(3.0, "float32"))
    c = keras.Variable(np.array([[1.0]], "float32"))
    with keras.GradientTape() as tape:
        loss = ops.sum(a * a) * b + ops.sum(c)
    grads = tape.gradient(loss, [[a, b], {"c": c}, (a,)])
    assert isinstance(grads[0], list) and isinstance(grads[1], dict) and isinstance(grads[2], tuple)
    np.testing.assert_allclose(grads[0][0].numpy(), [6.0, 12.0])
    np.testing.assert_allclose(grads[0][1].numpy(), 5.0)
    np.testing.assert_allclose(grads[1]["c"].numpy(), [[1.0]])
    np.testing.assert_allclose(grads[2][0].numpy(), [6.0, 12.0])


def test_compiled_loss_shim_returns_the_loss_and_feeds_the_loss_tracker():
    inputs = keras.Input((2,))
    dense = layers.Dense(1, kernel_initializer="ones", kernel_regularizer=keras.regularizers.L2(0.5))
    model = keras.Model(inputs, dense(inputs))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x = np.array([[1.0, 2.0], [0.0, -1.0]], "float32")
    y = np.array([[1.0], [1.0]], "float32")
    pred = model(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = model.compiled_loss(y, pred, regularization_losses=model.losses)
        model.compiled_metrics.update_state(y, pred)
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    mse = np.mean((np.array([[3.0], [-1.0]]) - y) ** 2)
    np.testing.assert_allclose(float(loss), mse + 0.5 * 2, rtol=1e-6)  # the penalty once, not twice
    logs = {m.name: float(m.result()) for m in model.metrics}
    np.testing.assert_allclose(logs["loss"], mse + 1.0, rtol=1e-6)
    np.testing.assert_allclose(logs["mae"], np.mean(np.abs(np.array([[3.0], [-1.0]]) - y)), rtol=1e-6)
