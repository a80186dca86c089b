"""Activations (values vs torch/numpy, lookup, fusion names), initializers (fans, statistics, seeding,
configs) and regularizers (penalties, configs)."""

import math

import numpy as np
import pytest

import dlgpu
from dlgpu import activations, initializers, ops, regularizers

rng = np.random.default_rng(11)
X = (rng.normal(size=(6, 7)) * 3).astype(np.float32)


def sig(x):
    return 1 / (1 + np.exp(-x))


NUMPY = {
    "relu": lambda x: np.maximum(x, 0), "sigmoid": sig, "tanh": np.tanh, "linear": lambda x: x,
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x), "relu6": lambda x: np.clip(x, 0, 6),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)), "softplus": lambda x: np.log1p(np.exp(x)),
    "softsign": lambda x: x / (1 + np.abs(x)), "silu": lambda x: x * sig(x), "swish": lambda x: x * sig(x),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1), "exponential": np.exp,
    "mish": lambda x: x * np.tanh(np.log1p(np.exp(x))), "hard_silu": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
    "log_softmax": lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True)),
}


@pytest.mark.parametrize("name", sorted(NUMPY))
def test_activation_values(name):
    fn = activations.get(name)
    np.testing.assert_allclose(np.asarray(fn(X)), NUMPY[name](X.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_gelu_matches_torch():
    torch = pytest.importorskip("torch")
    t = torch.tensor(X)
    np.testing.assert_allclose(activations.gelu(X).numpy(), torch.nn.functional.gelu(t).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(activations.gelu(X, approximate=True).numpy(),
                               torch.nn.functional.gelu(t, approximate="tanh").numpy(), rtol=1e-5, atol=1e-6)


def test_relu_keras_arguments():
    np.testing.assert_allclose(activations.relu(X, negative_slope=0.1).numpy(), np.where(X > 0, X, 0.1 * X), rtol=1e-6)
    np.testing.assert_allclose(activations.relu(X, max_value=2.0).numpy(), np.clip(X, 0, 2), rtol=1e-6)
    np.testing.assert_allclose(activations.relu(X, threshold=1.0).numpy(), np.where(X >= 1, X, 0), rtol=1e-6)


def test_get_serialize_and_errors():
    assert activations.get(None) is activations.linear
    assert activations.get(np.tanh) is np.tanh
    assert activations.get("swish") is activations.silu
    assert activations.serialize(activations.get("relu")) == "relu"
    assert activations.deserialize("gelu") is activations.gelu
    with pytest.raises(ValueError, match=r"Unknown activation: 'rellu'.*Did you mean 'relu'.*Valid:.*sigmoid"):
        activations.get("rellu")


def test_fused_names():
    assert activations.fused_name(activations.get("relu")) == "relu"
    assert activations.fused_name("gelu") == "gelu"
    assert activations.fused_name(None) == "linear"
    assert activations.fused_name(ops.tanh) == "tanh"
    for name in ("softmax", "elu", "swish"):
        assert activations.fused_name(name) is None
    assert activations.fused_name(lambda x: x) is None
    assert set(filter(None, map(activations.fused_name, ops.nn.ACTIVATION_NAMES))) == set(ops.nn.ACTIVATION_NAMES)


def test_softmax_and_sigmoid_keep_their_logits():
    assert activations.softmax(X)._logits[0].data is not None
    assert activations.sigmoid(X)._logits[1] == "sigmoid"


# -- initializers --------------------------------------------------------------------------------------

def test_fans_follow_keras():
    assert initializers.compute_fans((5,)) == (5, 5)
    assert initializers.compute_fans((4, 6)) == (4, 6)
    assert initializers.compute_fans((3, 3, 16, 32)) == (144, 288)


@pytest.mark.parametrize("name, limit_or_std", [
    ("glorot_uniform", ("uniform", math.sqrt(6 / (144 + 288)))),
    ("he_uniform", ("uniform", math.sqrt(6 / 144))),
    ("lecun_uniform", ("uniform", math.sqrt(3 / 144))),
    ("glorot_normal", ("normal", math.sqrt(2 / (144 + 288)))),
    ("he_normal", ("normal", math.sqrt(2 / 144))),
    ("lecun_normal", ("normal", math.sqrt(1 / 144))),
])
def test_variance_scaling_statistics(name, limit_or_std):
    kind, value = limit_or_std
    w = initializers.get(name)((3, 3, 16, 32), "float32")
    assert w.dtype == np.float32 and w.shape == (3, 3, 16, 32) and isinstance(w, np.ndarray)
    if kind == "uniform":
        assert np.abs(w).max() <= value and np.abs(w).max() > 0.95 * value
        np.testing.assert_allclose(w.std(), value / math.sqrt(3), rtol=0.05)
    else:  # truncated at 2 std of the underlying normal, rescaled so the std is as asked
        np.testing.assert_allclose(w.std(), value, rtol=0.05)
        assert np.abs(w).max() <= 2 * value / 0.87962566103423978 + 1e-6


def test_simple_initializers():
    assert (initializers.get("zeros")((2, 3)) == 0).all() and (initializers.Ones()((2,), "float32") == 1).all()
    assert (initializers.Constant(0.5)((3,)) == 0.5).all()
    np.testing.assert_array_equal(initializers.Identity(gain=2.0)((3, 4)), 2 * np.eye(3, 4))
    q = initializers.Orthogonal()((5, 8))
    np.testing.assert_allclose(q @ q.T, np.eye(5), atol=1e-5)
    u = initializers.RandomUniform(-0.1, 0.2)((1000,))
    assert u.min() >= -0.1 and u.max() <= 0.2
    t = initializers.TruncatedNormal(stddev=1.0)((5000,))
    assert np.abs(t).max() <= 2.0
    n = initializers.RandomNormal(mean=1.0, stddev=0.5)((20000,))
    np.testing.assert_allclose([n.mean(), n.std()], [1.0, 0.5], atol=0.02)


def test_seeding():
    a = initializers.GlorotUniform(seed=3)((4, 4))
    np.testing.assert_array_equal(a, initializers.GlorotUniform(seed=3)((4, 4)))
    initializers.set_seed(42)
    first = initializers.HeNormal()((4, 4))
    initializers.set_seed(42)
    np.testing.assert_array_equal(first, initializers.HeNormal()((4, 4)))
    assert not np.array_equal(first, initializers.HeNormal()((4, 4)))


def test_initializer_config_and_errors():
    for init in (initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=1), initializers.HeNormal(seed=5),
                 initializers.RandomNormal(0.1, 0.2), initializers.Constant(3.0), initializers.Orthogonal(gain=2.0)):
        back = initializers.deserialize(initializers.serialize(init))
        assert type(back) is type(init) and back.get_config() == init.get_config()
    with pytest.raises(ValueError, match=r"Unknown initializer: 'glorot_unifrom'.*Did you mean 'glorot_uniform'"):
        initializers.get("glorot_unifrom")
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(mode="fan_max")


# -- regularizers ---------------------------------------------------------------------------------------

def test_regularizer_penalties():
    w = ops.convert_to_tensor(X)
    np.testing.assert_allclose(float(regularizers.L1(0.1)(w)), 0.1 * np.abs(X).sum(), rtol=1e-5)
    np.testing.assert_allclose(float(regularizers.L2(0.2)(w)), 0.2 * (X ** 2).sum(), rtol=1e-5)
    np.testing.assert_allclose(float(regularizers.L1L2(0.1, 0.2)(w)), 0.1 * np.abs(X).sum() + 0.2 * (X ** 2).sum(), rtol=1e-5)
    assert float(regularizers.get("l2")(w)) == pytest.approx(0.01 * (X ** 2).sum(), rel=1e-5)
    assert float(regularizers.L1L2()(w)) == 0.0


def test_regularizer_config_and_errors():
    r = regularizers.L1L2(l1=0.1, l2=0.3)
    back = regularizers.deserialize(regularizers.serialize(r))
    assert type(back) is regularizers.L1L2 and back.get_config() == {"l1": 0.1, "l2": 0.3}
    assert isinstance(regularizers.get("l1_l2"), regularizers.L1L2)
    with pytest.raises(ValueError, match=r"Unknown regularizer: 'l3'"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="non-negative"):
        regularizers.L2(-1.0)


def test_registered_custom_regularizer_and_initializer_survive_save_and_load(tmp_path):
    """A layer's from_config gets no custom_objects, so loading finds them through the registry."""
    @dlgpu.saving.register_keras_serializable()
    class ScaledL2(dlgpu.regularizers.Regularizer):
        def __init__(self, scale=0.5):
            self.scale = scale

        def __call__(self, x):
            return dlgpu.ops.multiply(dlgpu.ops.sum(dlgpu.ops.square(x)), self.scale)

        def get_config(self):
            return {"scale": self.scale}

    @dlgpu.saving.register_keras_serializable()
    class Fives(dlgpu.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return np.full(shape, 5.0, dtype or "float32")

    model = dlgpu.Sequential([dlgpu.layers.Input((3,)),
                              dlgpu.layers.Dense(2, kernel_regularizer=ScaledL2(0.25), kernel_initializer=Fives())])
    model.compile("sgd", "mse")
    model.save(tmp_path / "custom.dlgpu")
    dense = dlgpu.models.load_model(tmp_path / "custom.dlgpu").layers[0]
    assert isinstance(dense.kernel_regularizer, ScaledL2) and dense.kernel_regularizer.scale == 0.25
    assert isinstance(dense.kernel_initializer, Fives)
