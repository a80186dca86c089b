"""Keras 3's native .keras / .weights.h5 files: written by real Keras and read by dlgpu, and the other way.

The same builder code runs on both libraries (dlgpu is Keras-shaped), so each family is built twice with
identical weights and compared on predictions, compile settings and optimizer state."""

import io
import json
import os
import warnings
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

import dlgpu  # noqa: E402
from dlgpu.models.saving import SavedModelError  # noqa: E402


def dense_family(K):
    L = K.layers
    return K.Sequential([K.Input((6,)), L.Dense(8, activation="relu"), L.BatchNormalization(), L.Dropout(0.2),
                         L.Reshape((2, 4)), L.Flatten(), L.Activation("tanh"), L.Dense(3)])


def conv_family(K):
    L = K.layers
    inp = K.Input((8, 8, 2))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = L.MaxPooling2D()(x)
    x = L.AveragePooling2D(2)(x)
    y = L.GlobalAveragePooling2D()(L.Conv2D(3, 1)(x))
    z = L.Flatten()(x)
    return K.Model(inp, L.Concatenate()([y, z]))


def recurrent_family(K):
    L = K.layers
    inp = K.Input((7,), dtype="int32")
    e = L.Embedding(20, 6)(inp)
    a = L.LSTM(5, return_sequences=True)(e)
    b = L.GRU(5, return_sequences=True)(e)
    c = L.SimpleRNN(5, return_sequences=True)(e)
    d = L.Bidirectional(L.LSTM(3, return_sequences=True))(e)
    f = L.RNN(L.LSTMCell(2), return_sequences=True)(e)  # the generic RNN: its cell's variables under "cell"
    g = L.RNN([L.GRUCell(2), L.SimpleRNNCell(3), L.GRUCell(2)], return_sequences=True)(e)  # cells/gru_cell_1
    x = L.LayerNormalization()(L.Concatenate()([a, b, c, d, f, g]))
    x = L.MaxPooling1D()(L.Conv1D(4, 3)(x))
    return K.Model(inp, L.Dense(2)(L.Flatten()(x)))


def attention_family(K):
    L = K.layers
    inp = K.Input((5, 6))
    att = L.MultiHeadAttention(num_heads=2, key_dim=4)(inp, inp)
    grouped = L.GroupQueryAttention(head_dim=3, num_query_heads=4, num_key_value_heads=2)(inp, att)
    x = L.LayerNormalization()(L.Add()([inp, att, grouped]))
    return K.Model(inp, L.Dense(3)(x))


def nested_family(K):
    L = K.layers
    inner = K.Sequential([K.Input((4,)), L.Dense(5, activation="relu"), L.Dense(4)], name="inner")
    inp = K.Input((4,))
    block = K.Model(inp, L.Add()([inp, inner(inp)]), name="block")
    return K.Sequential([K.Input((4,)), block, L.Dense(2)])


def ops_family(K):
    """keras.ops called on symbolic tensors: Keras writes each as an Operation class (keras.src.ops.numpy.Pad),
    its constructor arguments in the config and the rest in the node."""
    O = K.ops
    x = K.Input((4, 6))
    a = O.reshape(x, (-1, 2, 12))[:, 1:, ..., ::2]
    b = K.layers.Dense(5)(O.pad(a, ((0, 0), (1, 1), (2, 0)), constant_values=1.0))
    c = O.einsum("bij->bji", O.where(b > 0, b, O.square(b) * 0.5))
    d = O.concatenate([O.mean(c, axis=1), O.max(c, axis=2)], axis=-1)
    return K.Model(x, O.softmax(O.expand_dims(O.cast(d, "float32"), 1) + 1.0, axis=-1))


def wrapper_family(K):
    """Layers whose variables Keras keeps in a sublayer: TimeDistributed's ``layer``, ConvLSTM's ``cell``."""
    L = K.layers
    x = K.Input((3, 5, 5, 2))
    y = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True)(x)
    return K.Model(x, L.TimeDistributed(L.Dense(2))(L.TimeDistributed(L.Flatten())(y)))


def audio_family(K):
    L = K.layers
    inp = K.Input((40, 2))
    x = L.STFTSpectrogram(frame_length=8, frame_step=3, fft_length=8, padding="same")(inp)
    return K.Model(inp, L.Dense(2)(L.Flatten()(x)))


def mel_family(K):
    L = K.layers
    inp = K.Input((100,))
    x = L.MelSpectrogram(fft_length=32, sequence_stride=16, num_mel_bins=4, sampling_rate=8000)(inp)
    return K.Model(inp, L.Dense(2)(L.Flatten()(L.Rescaling(0.01)(x))))


def _language_family(tie_weights):
    def build(K):
        L = K.layers
        inp = K.Input((7,), dtype="int32")
        embedding = L.ReversibleEmbedding(20, 6, tie_weights=tie_weights, logit_soft_cap=30.0)
        x = L.Dense(6, activation="tanh")(embedding(inp))
        return K.Model(inp, embedding(x, reverse=True))
    return build


FAMILIES = {"dense": (dense_family, (6,)), "conv": (conv_family, (8, 8, 2)),
            "recurrent": (recurrent_family, None), "attention": (attention_family, (5, 6)),
            "nested": (nested_family, (4,)), "ops": (ops_family, (4, 6)), "wrappers": (wrapper_family, (3, 5, 5, 2)),
            "audio": (audio_family, (40, 2)), "mel": (mel_family, (100,)),
            "tied_language": (_language_family(True), None), "untied_language": (_language_family(False), None)}


def _inputs(name, n=4):
    rng = np.random.default_rng(1)
    shape = FAMILIES[name][1]
    if shape is None:
        return rng.integers(0, 20, (n, 7)).astype("int32")
    return rng.standard_normal((n, *shape)).astype("float32")


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    weights = model.get_weights()
    # Positive values keep BatchNormalization's moving variance valid.
    model.set_weights([(rng.random(w.shape) + 0.5).astype(w.dtype) for w in weights])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_keras_file_loads_in_dlgpu(family, tmp_path):
    km = FAMILIES[family][0](keras)
    _randomize(km)
    path = tmp_path / "k.keras"
    km.save(path)
    model = dlgpu.models.load_model(path)
    x = _inputs(family)
    np.testing.assert_allclose(model.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_dlgpu_keras_file_loads_in_keras(family, tmp_path):
    model = FAMILIES[family][0](dlgpu)
    _randomize(model)
    path = tmp_path / "d.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    km = keras.saving.load_model(path)
    x = _inputs(family)
    np.testing.assert_allclose(km.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    # and back: dlgpu reads its own .keras file
    again = dlgpu.models.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def _train_data():
    rng = np.random.default_rng(2)
    return rng.standard_normal((16, 6)).astype("float32"), rng.standard_normal((16, 3)).astype("float32")


def _small(K, optimizer):
    L = K.layers
    model = K.Sequential([K.Input((6,)), L.Dense(8, activation="tanh"), L.BatchNormalization(), L.Dense(3)])
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model


OPTIMIZERS = {"adam": lambda K: K.optimizers.Adam(0.01),
              "adam_amsgrad": lambda K: K.optimizers.Adam(0.01, amsgrad=True),
              "sgd_momentum": lambda K: K.optimizers.SGD(0.05, momentum=0.9),
              "rmsprop": lambda K: K.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
              "adagrad": lambda K: K.optimizers.Adagrad(0.05),
              "adamax": lambda K: K.optimizers.Adamax(0.01)}


def _assert_same_weights(a, b, atol=2e-5):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_keras_training_resumes_in_dlgpu(opt, tmp_path):
    """Keras trains two steps and saves; dlgpu loads the compile settings and the optimizer's slots, and one
    more step in each library gives the same weights."""
    x, y = _train_data()
    km = _small(keras, OPTIMIZERS[opt](keras))
    km.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    km.save(tmp_path / "k.keras")
    model = dlgpu.models.load_model(tmp_path / "k.keras")
    assert type(model.optimizer).__name__ == type(km.optimizer).__name__
    assert int(model.optimizer.iterations.numpy()) == 2
    assert np.isclose(float(model.optimizer.learning_rate), float(km.optimizer.learning_rate))
    assert model.get_compile_config()["loss"] == "mse"
    assert model.get_compile_config()["metrics"] == ["mae"]
    km.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    _assert_same_weights(model, km)


@pytest.mark.parametrize("opt", ["adam", "sgd_momentum", "rmsprop"])
def test_dlgpu_training_resumes_in_keras(opt, tmp_path):
    x, y = _train_data()
    model = _small(dlgpu, OPTIMIZERS[opt](dlgpu))
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    model.save(tmp_path / "d.keras")
    km = keras.saving.load_model(tmp_path / "d.keras")
    assert int(km.optimizer.iterations.numpy()) == 2
    assert km.loss == "mse"
    km.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    _assert_same_weights(km, model)


def test_unmapped_optimizer_state_resumes_in_dlgpu(tmp_path):
    """An optimizer whose Keras layout dlgpu does not map keeps its state in a group Keras does not read;
    dlgpu resumes from it exactly, Keras opens the file with a fresh optimizer state."""
    x, y = _train_data()
    model = _small(dlgpu, dlgpu.optimizers.Lion(1e-3))
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "d.keras")
    again = dlgpu.models.load_model(tmp_path / "d.keras")
    assert int(again.optimizer.iterations.numpy()) == 2
    for a, b in zip(model.optimizer.variables, again.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
        km = keras.saving.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(km.predict(x, verbose=0), again.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    again.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    _assert_same_weights(model, again, atol=1e-6)


def test_model_checkpoint_keras_path_resumes(tmp_path):
    x, y = _train_data()
    model = _small(dlgpu, "adam")
    path = str(tmp_path / "ckpt-{epoch}.keras")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
              callbacks=[dlgpu.callbacks.ModelCheckpoint(path, monitor="loss")])
    saved = tmp_path / "ckpt-2.keras"
    with zipfile.ZipFile(saved) as archive:
        assert "model.weights.h5" in archive.namelist()
    resumed = dlgpu.models.load_model(saved)
    assert int(resumed.optimizer.iterations.numpy()) == 4
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    resumed.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    _assert_same_weights(model, resumed, atol=1e-6)


def test_dlgpu_format_for_other_names(tmp_path):
    model = _small(dlgpu, "adam")
    model.fit(*_train_data(), epochs=1, verbose=0)
    model.save(tmp_path / "m.dlgpu")
    with zipfile.ZipFile(tmp_path / "m.dlgpu") as archive:
        assert "model.weights.npz" in archive.namelist()
    assert int(dlgpu.models.load_model(tmp_path / "m.dlgpu").optimizer.iterations.numpy()) == 1


def test_subclassed_model_is_written_in_keras_layout(tmp_path):
    """Keras's walk: the model's layers under their attribute names (no fallback to dlgpu's format)."""
    class Net(dlgpu.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = dlgpu.layers.Dense(2)
            self.heads = [dlgpu.layers.Dense(1), dlgpu.layers.Dense(1)]

        def call(self, x):
            x = self.dense(x)
            return self.heads[0](x) + self.heads[1](x)
    model = Net()
    x = np.arange(6, dtype="float32").reshape(2, 3)
    model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save(tmp_path / "n.keras")
    with zipfile.ZipFile(tmp_path / "n.keras") as archive:
        assert "model.weights.h5" in archive.namelist()
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
            groups = set()
            h5.visit(lambda name: groups.add(name) if isinstance(h5[name], h5py.Dataset) else None)
    assert groups == {"dense/vars/0", "dense/vars/1", "heads/dense/vars/0", "heads/dense/vars/1",
                      "heads/dense_1/vars/0", "heads/dense_1/vars/1"}
    loaded = dlgpu.models.load_model(tmp_path / "n.keras", custom_objects={"Net": Net})
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


# One op per model, each in both directions: the table's split of arguments between constructor and call,
# dlgpu's renamed parameters (new_shape, index), and defaults of arguments only one library has.
OP_CALLS = {
    "reshape": lambda O, x: O.reshape(x, (-1, 3, 2)),
    "broadcast_to": lambda O, x: O.broadcast_to(O.expand_dims(x, 1), (2, 2, 3, 6)),  # the test batch is 2
    "get_item": lambda O, x: x[:, None, 1::2, -1],
    "transpose": lambda O, x: O.transpose(x, (0, 2, 1)),
    "sum": lambda O, x: O.sum(x, axis=(1,), keepdims=True),
    "max": lambda O, x: O.max(x, axis=-1),
    "argmax": lambda O, x: O.cast(O.argmax(x, axis=1), "float32"),
    "clip": lambda O, x: O.clip(x, -0.5, 0.25),
    "stack": lambda O, x: O.stack([x, O.exp(x)], axis=1),
    "split": lambda O, x: O.add(*O.split(x, 2, axis=-1)),
    "take": lambda O, x: O.take(x, np.array([2, 0]), axis=-1),
    "tile": lambda O, x: O.tile(x, (1, 2, 1)),
    "repeat": lambda O, x: O.repeat(x, 2, axis=1),
    "cumsum": lambda O, x: O.cumsum(x, axis=1),
    "one_hot": lambda O, x: O.one_hot(O.argmax(x, axis=-1), 6),
    "matmul": lambda O, x: O.matmul(x, np.arange(12, dtype="float32").reshape(6, 2)),
    "tensordot": lambda O, x: O.tensordot(x, x, axes=((1, 2), (1, 2))),
    "einsum": lambda O, x: O.einsum("bij,bkj->bik", x, x),
    "top_k": lambda O, x: O.top_k(x, 2)[0],
    "norm": lambda O, x: O.norm(x, axis=-1, keepdims=True),
    "logical": lambda O, x: O.cast(O.logical_and(x > 0, O.logical_not(x > 0.5)), "float32"),
    "minimum": lambda O, x: O.minimum(x, 0.1) - O.power(x, 2),
    "resize": lambda O, x: O.image.resize(O.expand_dims(x, -1), (6, 3), interpolation="nearest"),
    "softmax_nn": lambda O, x: O.log_softmax(x, axis=1) + O.sigmoid(x) * O.relu(x),
    "sort": lambda O, x: O.sort(x, axis=-1),
    "depth_to_space": lambda O, x: O.depth_to_space(O.reshape(x[:, :, :4], (-1, 1, 3, 4)), 2),
    "correlate": lambda O, x: O.expand_dims(O.correlate(x[0, 0], x[0, 1], mode="same"), 0),
}


@pytest.mark.parametrize("op", sorted(OP_CALLS))
def test_ops_in_graph_both_ways(op, tmp_path):
    x = np.random.default_rng(5).standard_normal((2, 3, 6)).astype("float32")
    for writer, reader in ((keras, dlgpu), (dlgpu, keras)):
        inp = writer.Input((3, 6))
        model = writer.Model(inp, OP_CALLS[op](writer.ops, inp))
        path = tmp_path / f"{writer.__name__}.keras"
        model.save(path)
        loaded = reader.saving.load_model(path)
        np.testing.assert_allclose(np.asarray(loaded.predict(x, verbose=0)), np.asarray(model.predict(x, verbose=0)),
                                   rtol=1e-5, atol=1e-6, err_msg=f"{op}: written by {writer.__name__}")


def test_keras_ops_table_matches_keras():
    """The committed table is what dlgpu/models/keras_ops_table.generate() reads from the installed Keras."""
    from dlgpu.models import keras_ops_table
    assert keras.__version__ == keras_ops_table.KERAS_VERSION
    assert keras_ops_table.generate() == keras_ops_table.KERAS_OPS


def test_keras_operation_with_an_argument_dlgpu_lacks(tmp_path):
    inp = keras.Input((4,))
    keras.Model(inp, keras.ops.round(inp, decimals=0)).save(tmp_path / "default.keras")
    x = np.array([[0.4, 1.6, -2.5, 3.2]], "float32")
    np.testing.assert_array_equal(dlgpu.saving.load_model(tmp_path / "default.keras").predict(x, verbose=0),
                                  np.round(x))
    keras.Model(inp, keras.ops.round(inp, decimals=1)).save(tmp_path / "other.keras")
    with pytest.raises(SavedModelError, match="decimals=1.*ops.round has no such argument"):
        dlgpu.saving.load_model(tmp_path / "other.keras")


def test_ops_in_graph_fall_back_with_warning(tmp_path):
    """An op Keras has no Operation class for (ops.mish is dlgpu's own) keeps the model in dlgpu's format."""
    inp = dlgpu.Input((3,))
    model = dlgpu.Model(inp, dlgpu.layers.Dense(2)(dlgpu.ops.mish(inp)))
    with pytest.warns(UserWarning, match="ops.mish"):
        model.save(tmp_path / "o.keras")
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(dlgpu.models.load_model(tmp_path / "o.keras").predict(x, verbose=0),
                               model.predict(x, verbose=0))


@pytest.mark.parametrize("family", ["dense", "recurrent"])
def test_weights_h5_both_ways(family, tmp_path):
    build, _ = FAMILIES[family]
    x = _inputs(family)
    km = build(keras)
    _randomize(km, seed=3)
    km.save_weights(tmp_path / "k.weights.h5")
    model = build(dlgpu)
    model.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(model.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    _randomize(model, seed=4)
    model.save_weights(tmp_path / "d.weights.h5")
    km.load_weights(tmp_path / "d.weights.h5")
    np.testing.assert_allclose(km.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_weights_h5_wrong_architecture(tmp_path):
    km = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    km.save_weights(tmp_path / "k.weights.h5")
    model = dlgpu.Sequential([dlgpu.Input((6,)), dlgpu.layers.Dense(5)])
    before = model.get_weights()
    with pytest.raises(SavedModelError, match="shape"):
        model.load_weights(tmp_path / "k.weights.h5")
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def _rewrite_config(src, dst, edit):
    with zipfile.ZipFile(src) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(entries["config.json"])
    edit(config)
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def test_unknown_class_named_before_building(tmp_path):
    km = dense_family(keras)
    km.save(tmp_path / "k.keras")

    def edit(config):
        config["config"]["layers"][1]["class_name"] = "FancyDense"
        config["config"]["layers"][2]["config"]["beta_initializer"]["class_name"] = "MysteryInit"
    _rewrite_config(tmp_path / "k.keras", tmp_path / "bad.keras", edit)
    with pytest.raises(SavedModelError, match="FancyDense.*MysteryInit|MysteryInit.*FancyDense"):
        dlgpu.models.load_model(tmp_path / "bad.keras")


def test_unsupported_keras_argument_refused(tmp_path):
    km = attention_family(keras)
    km.save(tmp_path / "k.keras")

    def edit(config):
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "MultiHeadAttention":
                layer["config"]["use_gate"] = True
    _rewrite_config(tmp_path / "k.keras", tmp_path / "gate.keras", edit)
    with pytest.raises(NotImplementedError, match="multi_head_attention.*use_gate"):  # the layer's own refusal
        dlgpu.models.load_model(tmp_path / "gate.keras")


def test_bad_files(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(SavedModelError, match="not a dlgpu model"):
        dlgpu.models.load_model(tmp_path / "other.keras")
    (tmp_path / "text.keras").write_text("not a zip")
    with pytest.raises(SavedModelError, match="not a dlgpu model file, nor a Keras"):
        dlgpu.models.load_model(tmp_path / "text.keras")
    with zipfile.ZipFile(tmp_path / "noweights.keras", "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}}))
    with pytest.raises(SavedModelError, match="model.weights.h5"):
        dlgpu.models.load_model(tmp_path / "noweights.keras")


def test_write_is_atomic(tmp_path, monkeypatch):
    model = dense_family(dlgpu)
    path = tmp_path / "m.keras"
    model.save(path)
    good = path.read_bytes()
    writestr = zipfile.ZipFile.writestr

    def broken(self, name, data, *args, **kwargs):
        if name == "model.weights.h5":  # fails half-way through the archive
            raise OSError("disk full")
        return writestr(self, name, data, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "writestr", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]


@pytest.mark.parametrize("writer", ["keras", "dlgpu"])
def test_loss_and_metric_objects_cross_over(writer, tmp_path):
    K, other = (keras, dlgpu) if writer == "keras" else (dlgpu, keras)
    model = K.Sequential([K.Input((6,)), K.layers.Dense(3)])
    # (not Huber(delta=...): Keras 3.15's Huber.get_config leaves delta out, so Keras itself loses it)
    model.compile(optimizer=K.optimizers.SGD(0.1),
                  loss=K.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
                  metrics=[K.metrics.RootMeanSquaredError(name="rmse"), "mae"])
    model.save(tmp_path / "m.keras")
    loaded = (dlgpu.models.load_model if writer == "keras" else keras.saving.load_model)(tmp_path / "m.keras")
    x, y = _train_data()
    y = (y > 0).astype("float32")
    expected = model.evaluate(x, y, verbose=0, return_dict=True)
    got = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert set(got) == {"loss", "rmse", "mae"}
    for key in got:
        assert np.isclose(got[key], expected[key], rtol=1e-5), key


def test_load_weights_from_a_whole_keras_file(tmp_path):
    km = dense_family(keras)
    _randomize(km, seed=5)
    km.save(tmp_path / "k.keras")
    model = dense_family(dlgpu)
    model.load_weights(tmp_path / "k.keras")
    x = _inputs("dense")
    np.testing.assert_allclose(model.predict(x, verbose=0), km.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_weights_h5_of_an_unmapped_model_falls_back(tmp_path):
    inp = dlgpu.Input((3,))
    model = dlgpu.Model(inp, dlgpu.layers.Dense(2)(dlgpu.ops.mish(inp)))
    with pytest.warns(UserWarning, match="ops.mish"):
        model.save_weights(tmp_path / "o.weights.h5")
    other = dlgpu.Model(inp, dlgpu.layers.Dense(2)(dlgpu.ops.mish(inp)))
    other.load_weights(tmp_path / "o.weights.h5")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_recorded_training_defaults_do_not_stick(tmp_path):
    """Keras writes each layer's default `training` into its nodes (Dropout: False, the image augmentations:
    True) and lets fit/predict override it; read literally, a loaded model would never drop out in fit and
    would augment in predict."""
    inp = keras.Input((4, 4, 3))
    flipped = keras.layers.RandomFlip("horizontal", seed=1)(inp)
    keras.Model(inp, keras.layers.Dropout(0.5, seed=1)(flipped)).save(tmp_path / "k.keras")
    model = dlgpu.saving.load_model(tmp_path / "k.keras")
    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3) + 1
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    trained = model(x, training=True).numpy()
    assert (trained == 0).any() and set(np.unique(trained[trained != 0] / 2)) <= set(np.unique(x))
