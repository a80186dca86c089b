"""Normalization, Discretization and CategoryEncoding: the layer contract; adapt() against numpy (arrays,
batches, (x, y) pairs, a PyDataset); invert round trip; Keras's docstring examples; gradients through
Normalization; an adapted Normalization saved and loaded inside a model; bad inputs."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops
from dlgpu.models import load_model

from helpers import check_gradients

from .layer_test_case import run_layer_test


# -- Normalization --------------------------------------------------------------------------------------
def test_normalization_contract():
    run_layer_test(layers.Normalization, {}, (3, 5), (3, 5), expected_num_non_trainable_weights=2,
                   expected_weight_shapes=[(5,), (5,)])
    run_layer_test(layers.Normalization, {"axis": (1, 3)}, (2, 4, 3, 2), (2, 4, 3, 2),
                   expected_num_non_trainable_weights=2, expected_weight_shapes=[(4, 2), (4, 2)])
    run_layer_test(layers.Normalization, {"axis": None, "mean": 2.0, "variance": 4.0}, (3, 5), (3, 5))
    run_layer_test(layers.Normalization, {"mean": [1.0, 2.0], "variance": [1.0, 4.0], "invert": True},
                   (3, 4, 2), (3, 4, 2))


@pytest.mark.parametrize("axis, reduce", [(-1, (0, 1, 2)), (None, None), ((1, 2), (0, 3)), (0, (1, 2, 3))])
def test_normalization_adapt_matches_numpy(axis, reduce):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((6, 4, 5, 3)) * [1.0, 5.0, 0.1] + [3.0, -2.0, 100.0]).astype(np.float32)
    layer = layers.Normalization(axis=axis)
    layer.adapt(x)
    mean, var = x.astype(np.float64).mean(axis=reduce), x.astype(np.float64).var(axis=reduce)
    np.testing.assert_allclose(layer.mean.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(layer.variance.numpy(), var, rtol=1e-5)
    keep = np.expand_dims(mean, reduce) if reduce is not None else mean
    keep_var = np.expand_dims(var, reduce) if reduce is not None else var
    np.testing.assert_allclose(layer(x).numpy(), (x - keep) / np.sqrt(keep_var), rtol=1e-4, atol=1e-4)
    assert layer(x).dtype == "float32"


def test_normalization_adapt_on_batches_pairs_and_pydataset():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((50, 3)) * [1.0, 2.0, 3.0] + 7).astype(np.float32)
    whole = layers.Normalization()
    whole.adapt(x)
    batches = [x[i:i + 16] for i in range(0, 50, 16)]  # uneven last batch

    class Batches(dlgpu.utils.PyDataset):
        def __len__(self):
            return len(batches)

        def __getitem__(self, i):
            return batches[i], np.zeros(len(batches[i]))

    for data in (iter(batches), [(b, np.zeros(len(b))) for b in batches], Batches(), ops.convert_to_tensor(x)):
        layer = layers.Normalization()
        layer.adapt(data)
        np.testing.assert_allclose(layer.mean.numpy(), whole.mean.numpy(), rtol=1e-6)
        np.testing.assert_allclose(layer.variance.numpy(), whole.variance.numpy(), rtol=1e-5)


def test_normalization_keras_examples_and_invert_round_trip():
    layer = layers.Normalization(axis=None)
    layer.adapt(np.array([1., 2., 3., 4., 5.], dtype="float32"))
    np.testing.assert_allclose(layer(np.array([1., 2., 3.], "float32")).numpy(), [-1.4142135, -0.70710677, 0.],
                               rtol=1e-6)
    data = np.array([[0., 7., 4.], [2., 9., 6.], [0., 7., 4.], [2., 9., 6.]], dtype="float32")
    layer = layers.Normalization(axis=-1)
    layer.adapt(data)
    np.testing.assert_allclose(layer(np.array([[0., 7., 4.]], "float32")).numpy(), [[-1., -1., -1.]])
    fixed = layers.Normalization(mean=3., variance=2.)
    np.testing.assert_allclose(fixed(np.array([[1.], [2.], [3.]], "float32")).numpy()[:, 0],
                               [-1.4142135, -0.70710677, 0.], rtol=1e-6)
    inverse = layers.Normalization(axis=-1, invert=True)
    inverse.adapt(data)
    np.testing.assert_allclose(inverse(np.array([[1., 2., 3.]], "float32")).numpy(), [[2., 10., 8.]])
    # round trip: normalise then invert with the same statistics
    x = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32) * 3 + 5
    np.testing.assert_allclose(inverse(layer(x)).numpy(), x, rtol=1e-5, atol=1e-5)
    # a layer never adapted is the identity (mean 0, variance 1), as in Keras
    np.testing.assert_allclose(layers.Normalization()(x).numpy(), x)


def test_normalization_gradient_flows_to_inputs():
    layer = layers.Normalization(mean=[1.0, -2.0], variance=[4.0, 0.25], dtype="float64")
    check_gradients(lambda x: layer(x), [np.random.default_rng(3).standard_normal((3, 2))])


def test_adapted_normalization_saved_and_loaded_in_a_model(tmp_path):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((64, 4)) * [1, 10, 100, 0.1] + 50).astype(np.float32)
    y = (x[:, 1] > 50).astype(np.int64)
    norm = layers.Normalization()
    norm.adapt(x)
    dlgpu.set_random_seed(0)
    model = dlgpu.Sequential([dlgpu.Input((4,)), norm, layers.Dense(8, activation="relu"),
                              layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    before = norm.get_weights()
    np.testing.assert_array_equal(before[0], norm.mean.numpy())  # fit leaves the statistics alone
    model.save(tmp_path / "norm.dlgpu")
    loaded = load_model(tmp_path / "norm.dlgpu")
    np.testing.assert_allclose(loaded.layers[0].mean.numpy(), before[0])
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_normalization_bad_inputs():
    with pytest.raises(ValueError, match="'norm'.*`mean` and `variance` must be set together"):
        layers.Normalization(mean=1.0, name="norm")
    with pytest.raises(ValueError, match="same shape"):
        layers.Normalization(mean=[1.0, 2.0], variance=[1.0])
    with pytest.raises(ValueError, match="adapt\\(\\) cannot be used"):
        layers.Normalization(mean=1.0, variance=1.0).adapt(np.ones((2, 1)))
    layer = layers.Normalization(name="norm_b")
    layer.adapt(np.ones((4, 3)))
    with pytest.raises(ValueError, match="'norm_b'.*built for input shape \\(4, 3\\).*\\(4, 5\\)"):
        layer.adapt(np.ones((4, 5)))
    with pytest.raises(ValueError, match="`axis` must lie in"):
        layers.Normalization(axis=3).build((None, 4))
    with pytest.raises(ValueError, match="received no batches"):
        layers.Normalization().adapt(iter([]))
    with pytest.raises(TypeError, match="adapt\\(\\) takes"):
        layers.Normalization().adapt(3.0)


# -- Discretization -------------------------------------------------------------------------------------
def test_discretization_contract():
    run_layer_test(layers.Discretization, {"bin_boundaries": [-0.5, 0.0, 0.5]}, (3, 4), (3, 4))
    run_layer_test(layers.Discretization, {"bin_boundaries": [0.0, 1.0], "output_mode": "one_hot"}, (3, 1), (3, 3))
    run_layer_test(layers.Discretization, {"bin_boundaries": [0.0], "output_mode": "count"}, (3, 4), (3, 2))
    assert layers.Discretization([0.0])(dlgpu.Input((4,))).dtype == "int32"


def test_discretization_keras_examples():
    x = np.array([[-1.5, 1.0, 3.4, .5], [0.0, 3.0, 1.3, 0.0]])
    out = layers.Discretization(bin_boundaries=[0., 1., 2.])(x)
    assert out.dtype == "int32"
    np.testing.assert_array_equal(out.numpy(), [[0, 2, 3, 1], [1, 3, 2, 1]])
    layer = layers.Discretization(num_bins=4, epsilon=0.01)
    layer.adapt(x)
    np.testing.assert_array_equal(layer(x).numpy(), [[0, 2, 3, 2], [1, 3, 3, 1]])
    np.testing.assert_allclose(layer.bin_boundaries, [0.0, 0.5, 1.3], rtol=1e-6)
    # the adapted boundaries survive the config round trip (Keras stores both num_bins and bin_boundaries)
    clone = layers.deserialize(layers.serialize(layer))
    np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())


def test_discretization_output_modes_and_batched_adapt():
    x = np.array([[0.1, 2.5], [1.5, 1.7]], dtype=np.float32)
    multi = layers.Discretization(bin_boundaries=[1.0, 2.0], output_mode="multi_hot")(x).numpy()
    np.testing.assert_array_equal(multi, [[1, 0, 1], [0, 1, 0]])
    count = layers.Discretization(bin_boundaries=[1.0, 2.0], output_mode="count")(x).numpy()
    np.testing.assert_array_equal(count, [[1, 0, 1], [0, 2, 0]])
    values = np.random.default_rng(5).standard_normal(1000).astype(np.float32)
    layer = layers.Discretization(num_bins=5)
    layer.adapt([values[:300], values[300:]])
    np.testing.assert_allclose(layer.bin_boundaries, np.quantile(values, [.2, .4, .6, .8],
                                                                 method="interpolated_inverted_cdf"), rtol=1e-6)
    counts = np.bincount(layer(values).numpy(), minlength=5)
    assert counts.min() >= 199 and counts.max() <= 201


def test_discretization_bad_inputs():
    with pytest.raises(ValueError, match="set either `num_bins`"):
        layers.Discretization()
    with pytest.raises(ValueError, match="set only one"):
        layers.Discretization(bin_boundaries=[0.0], num_bins=2)
    with pytest.raises(ValueError, match="`output_mode` must be one of"):
        layers.Discretization([0.0], output_mode="tf_idf")
    with pytest.raises(NotImplementedError, match="sparse=True"):
        layers.Discretization([0.0], output_mode="one_hot", sparse=True)
    with pytest.raises(ValueError, match="sorted"):
        layers.Discretization([1.0, 0.0])
    with pytest.raises(ValueError, match="'disc'.*call adapt"):
        layers.Discretization(num_bins=3, name="disc")(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="needs `num_bins`"):
        layers.Discretization([0.0]).adapt(np.zeros(3))


# -- CategoryEncoding -----------------------------------------------------------------------------------
def test_category_encoding_contract():
    for mode, out in (("multi_hot", (3, 6)), ("count", (3, 6)), ("one_hot", (3, 4, 6))):
        run_layer_test(layers.CategoryEncoding, {"num_tokens": 6, "output_mode": mode}, (3, 4), out,
                       input_dtype="int32")
    run_layer_test(layers.CategoryEncoding, {"num_tokens": 6, "output_mode": "one_hot"}, (3, 1), (3, 6),
                   input_dtype="int64")


def test_category_encoding_keras_examples():
    one_hot = layers.CategoryEncoding(num_tokens=4, output_mode="one_hot")
    np.testing.assert_array_equal(one_hot([3, 2, 0, 1]).numpy(), np.eye(4)[[3, 2, 0, 1]])
    multi = layers.CategoryEncoding(num_tokens=4, output_mode="multi_hot")
    np.testing.assert_array_equal(multi([[0, 1], [0, 0], [1, 2], [3, 1]]).numpy(),
                                  [[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0], [0, 1, 0, 1]])
    count = layers.CategoryEncoding(num_tokens=4, output_mode="count")
    weights = np.array([[.1, .2], [.1, .1], [.2, .3], [.4, .2]])
    out = count([[0, 1], [0, 0], [1, 2], [3, 1]], count_weights=weights)
    assert out.dtype == "float32"
    np.testing.assert_allclose(out.numpy(), [[.1, .2, 0, 0], [.2, 0, 0, 0], [0, .2, .3, 0], [0, .2, 0, .4]],
                               rtol=1e-6)
    np.testing.assert_array_equal(count([[2, 2, 2, 0]]).numpy(), [[1, 0, 3, 0]])
    # a rank-1 input is one sample for multi_hot (as Keras)
    np.testing.assert_array_equal(multi(np.array([0, 3, 3])).numpy(), [1, 0, 0, 1])
    assert layers.CategoryEncoding(4, name="binary_alias", output_mode="binary").output_mode == "multi_hot"


def test_category_encoding_bad_inputs():
    with pytest.raises(ValueError, match="'enc'.*must lie in \\[0, 4\\); received values from 0 to 4"):
        layers.CategoryEncoding(4, name="enc")(np.array([[0, 4]]))
    with pytest.raises(ValueError, match="rank 1 or 2"):
        layers.CategoryEncoding(4)(np.zeros((2, 2, 2), np.int32))
    with pytest.raises(ValueError, match="`num_tokens` must be set"):
        layers.CategoryEncoding()
    with pytest.raises(ValueError, match="num_tokens=0"):
        layers.CategoryEncoding(0)
    with pytest.raises(ValueError, match="`output_mode` must be one of"):
        layers.CategoryEncoding(3, output_mode="int")
    with pytest.raises(ValueError, match="only used with output_mode='count'"):
        layers.CategoryEncoding(3)([[0, 1]], count_weights=[[1.0, 1.0]])
    with pytest.raises(ValueError, match="non-integer"):
        layers.CategoryEncoding(3)(np.array([[0.5, 1.0]]))


@pytest.mark.gpu
def test_preprocessing_on_gpu_matches_cpu():
    x = np.random.default_rng(6).standard_normal((8, 5)).astype(np.float32)
    ids = np.random.default_rng(7).integers(0, 6, (8, 3))
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            norm = layers.Normalization()
            norm.adapt(x)
            outs = [norm(x), layers.Normalization(axis=None, invert=True, mean=1.0, variance=4.0)(x),
                    layers.Discretization([-0.5, 0.0, 0.5])(x),
                    layers.Discretization([-0.5, 0.5], output_mode="count")(x)]
            outs += [layers.CategoryEncoding(6, output_mode=mode)(ids) for mode in ("one_hot", "multi_hot", "count")]
            results.append([o.numpy() for o in outs])
    for on_cpu, on_gpu in zip(*results):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-6, atol=1e-6)
