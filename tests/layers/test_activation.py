"""ReLU, LeakyReLU, Softmax, ELU layers: contract, PyTorch CPU and finite differences as references, bad arguments."""

import re

import numpy as np
import pytest

from dlgpu import layers

from helpers import away_from, check_gradients
from .layer_test_case import run_layer_test
from .torch_ref import assert_close, grads_of

CONTRACT = [
    (layers.ReLU, {}),
    (layers.ReLU, {"max_value": 1.5, "negative_slope": 0.1, "threshold": 0.2}),
    (layers.LeakyReLU, {"negative_slope": 0.05}),
    (layers.Softmax, {"axis": 1}),
    (layers.Softmax, {"axis": [1, 2]}),
    (layers.ELU, {"alpha": 0.7}),
]


@pytest.mark.parametrize("cls,kwargs", CONTRACT)
def test_activation_layer_contract(cls, kwargs):
    run_layer_test(cls, kwargs, (2, 3, 4), (2, 3, 4))


def _torch_reference(torch, name, kwargs):
    """The PyTorch module computing the same function (ReLU variants from Keras's documented formula)."""
    nn = torch.nn
    if name == "LeakyReLU":
        return nn.LeakyReLU(kwargs.get("negative_slope", 0.3))
    if name == "ELU":
        return nn.ELU(kwargs.get("alpha", 1.0))
    if name == "Softmax":
        axis = kwargs.get("axis", -1)
        if isinstance(axis, list):
            return lambda x: torch.exp(x - torch.logsumexp(x, dim=axis, keepdim=True))
        return nn.Softmax(dim=axis)
    slope, cap, t = kwargs.get("negative_slope", 0.0), kwargs.get("max_value"), kwargs.get("threshold", 0.0)
    if slope == 0 and t == 0:
        return nn.ReLU() if cap is None else nn.Hardtanh(0.0, cap)

    def relu(x):
        # Keras: max_value if x >= max_value; x if threshold <= x < max_value; slope * (x - threshold) otherwise
        y = torch.where(x >= t, x, slope * (x - t))
        return y if cap is None else torch.clamp(y, max=cap)
    return relu


TORCH_CASES = [
    ("ReLU", {}),
    ("ReLU", {"max_value": 6.0}),
    ("ReLU", {"max_value": 1.0, "negative_slope": 0.2}),
    ("ReLU", {"negative_slope": 0.5}),
    ("ReLU", {"threshold": 0.5}),
    ("ReLU", {"max_value": 2.0, "negative_slope": 0.1, "threshold": 0.3}),
    ("LeakyReLU", {}),                       # default slope 0.3, as keras.layers.LeakyReLU
    ("LeakyReLU", {"negative_slope": 1.5}),  # a slope above 1 must not turn into max(x, slope * x)
    ("Softmax", {}),
    ("Softmax", {"axis": 1}),
    ("Softmax", {"axis": [1, 2]}),
    ("ELU", {}),
    ("ELU", {"alpha": 0.4}),
]
# the kinks of each case, kept away from the sample points so both sides agree on the derivative
KINKS = [0.0, 0.2, 0.3, 0.5, 1.0, 2.0, 6.0]


@pytest.mark.parametrize("name,kwargs", TORCH_CASES, ids=[f"{n}-{k}" for n, k in TORCH_CASES])
def test_activation_layer_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = away_from(rng.standard_normal((3, 4, 5)) * 3, KINKS).astype(np.float32)
    up = rng.standard_normal(x.shape).astype(np.float32)
    out, (gx,) = grads_of(getattr(layers, name)(**kwargs), [x], [], up)
    tx = torch.tensor(x, requires_grad=True)
    ref = _torch_reference(torch, name, kwargs)(tx)
    (ref * torch.tensor(up)).sum().backward()
    assert out.dtype == np.float32
    assert_close(out, ref)
    assert_close(gx, tx.grad)


@pytest.mark.parametrize("name,kwargs", TORCH_CASES, ids=[f"{n}-{k}" for n, k in TORCH_CASES])
def test_activation_layer_gradient_finite_differences(name, kwargs):
    x = away_from(np.random.default_rng(1).standard_normal((2, 3, 4)) * 3, KINKS)
    check_gradients(getattr(layers, name)(dtype="float64", **kwargs), [x])


def test_relu_keras_docstring_example():
    x = np.array([-10, -5, 0.0, 5, 10], np.float32)
    out = layers.ReLU(max_value=10, negative_slope=0.5, threshold=0)(x).numpy()
    np.testing.assert_allclose(out, [-5.0, -2.5, 0.0, 5.0, 10.0])
    # integer images are computed in float32, as every dlgpu layer does
    assert layers.ReLU()(np.array([[-1, 2]])).numpy().dtype == np.float32


def test_leaky_relu_default_slope_and_alpha_alias():
    x = np.array([[-10.0, 4.0]], np.float32)
    np.testing.assert_allclose(layers.LeakyReLU()(x).numpy(), [[-3.0, 4.0]])
    layer = layers.LeakyReLU(alpha=0.1)  # Keras 2's name, still accepted by Keras 3
    assert layer.negative_slope == 0.1
    assert "alpha" not in layer.get_config()


def test_softmax_rows_sum_to_one_along_axis():
    x = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32) * 20
    np.testing.assert_allclose(layers.Softmax(axis=1)(x).numpy().sum(axis=1), 1.0, rtol=1e-6)
    # several axes: exp(x - logsumexp(x)) as Keras computes it, within float32 rounding of 1
    np.testing.assert_allclose(layers.Softmax(axis=[1, 2])(x).numpy().sum(axis=(1, 2)), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kwargs,arg", [
    ({"max_value": -1.0}, "max_value"),
    ({"negative_slope": -0.1}, "negative_slope"),
    ({"negative_slope": None}, "negative_slope"),
    ({"threshold": -1}, "threshold"),
    ({"threshold": "1"}, "threshold"),
])
def test_relu_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=rf"'my_relu'.*ReLU.*{arg}"):
        layers.ReLU(name="my_relu", **kwargs)


def test_other_activation_layers_bad_arguments():
    with pytest.raises(ValueError, match=r"'lr'.*LeakyReLU.*negative_slope=-0.5"):
        layers.LeakyReLU(-0.5, name="lr")
    with pytest.raises(ValueError, match=r"'sm'.*Softmax.*axis='last'"):
        layers.Softmax(axis="last", name="sm")
    with pytest.raises(ValueError, match=r"Softmax.*axis=\[\]"):
        layers.Softmax(axis=[])
    with pytest.raises(ValueError, match=r"'e'.*ELU.*alpha=None"):
        layers.ELU(alpha=None, name="e")


@pytest.mark.parametrize("cls,base", [(layers.ReLU, "re_lu"), (layers.LeakyReLU, "leaky_re_lu"), (layers.ELU, "elu"),
                                      (layers.Conv1D, "conv1d"), (layers.SpatialDropout2D, "spatial_dropout2d")])
def test_default_names_follow_keras(cls, base):
    args = {layers.Conv1D: (2, 3), layers.SpatialDropout2D: (0.5,)}.get(cls, ())
    assert re.fullmatch(rf"{base}(_\d+)?", cls(*args).name)
