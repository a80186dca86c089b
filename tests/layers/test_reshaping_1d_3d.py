"""ZeroPadding1D/3D, Cropping1D/3D, UpSampling1D/3D and UpSampling2D(interpolation='bilinear'): contract,
numpy/PyTorch references, finite differences, Keras's argument forms and errors."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, ops

from helpers import check_gradients
from .layer_test_case import run_layer_test
from .torch_ref import assert_close, grads_of, to_nchw, to_nhwc


@pytest.mark.parametrize("cls,kwargs,in_shape,out_shape", [
    (layers.ZeroPadding1D, {}, (2, 4, 3), (2, 6, 3)),
    (layers.ZeroPadding1D, {"padding": (0, 2)}, (1, 4, 3), (1, 6, 3)),
    (layers.Cropping1D, {}, (2, 4, 3), (2, 2, 3)),
    (layers.Cropping1D, {"cropping": (0, 3)}, (2, 4, 3), (2, 1, 3)),
    (layers.UpSampling1D, {}, (2, 4, 3), (2, 8, 3)),
    (layers.UpSampling1D, {"size": 3}, (1, 1, 2), (1, 3, 2)),
    (layers.ZeroPadding3D, {}, (1, 2, 3, 4, 2), (1, 4, 5, 6, 2)),
    (layers.ZeroPadding3D, {"padding": (1, 0, 2)}, (1, 2, 3, 4, 2), (1, 4, 3, 8, 2)),
    (layers.Cropping3D, {}, (1, 3, 4, 5, 2), (1, 1, 2, 3, 2)),
    (layers.Cropping3D, {"cropping": ((0, 1), (2, 0), (1, 1))}, (2, 3, 4, 5, 1), (2, 2, 2, 3, 1)),
    (layers.UpSampling3D, {}, (1, 2, 1, 3, 2), (1, 4, 2, 6, 2)),
    (layers.UpSampling3D, {"size": (1, 3, 2)}, (1, 2, 1, 3, 2), (1, 2, 3, 6, 2)),
    (layers.UpSampling2D, {"interpolation": "bilinear"}, (2, 3, 4, 2), (2, 6, 8, 2)),
    (layers.UpSampling2D, {"size": (3, 1), "interpolation": "bilinear"}, (1, 1, 2, 1), (1, 3, 2, 1)),
])
def test_contract(cls, kwargs, in_shape, out_shape):
    run_layer_test(cls, kwargs, in_shape, out_shape)


def test_keras_config_forms():
    assert layers.ZeroPadding1D(2).get_config()["padding"] == [2, 2]
    assert layers.Cropping1D((1, 0)).get_config()["cropping"] == [1, 0]
    assert "data_format" not in layers.Cropping1D().get_config()
    assert layers.UpSampling1D(3).get_config()["size"] == 3
    assert layers.ZeroPadding3D(1).get_config()["padding"] == [[1, 1], [1, 1], [1, 1]]
    assert layers.Cropping3D((1, 2, 3)).get_config()["cropping"] == [[1, 1], [2, 2], [3, 3]]
    assert layers.UpSampling3D(2).get_config()["size"] == [2, 2, 2]
    assert layers.UpSampling2D(interpolation="Bilinear").get_config()["interpolation"] == "bilinear"


def test_values_against_numpy():
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(layers.ZeroPadding1D((1, 2))(x1).numpy(), np.pad(x1, ((0, 0), (1, 2), (0, 0))))
    np.testing.assert_array_equal(layers.Cropping1D((2, 1))(x1).numpy(), x1[:, 2:4])
    np.testing.assert_array_equal(layers.Cropping1D((2, 0))(x1).numpy(), x1[:, 2:])
    np.testing.assert_array_equal(layers.UpSampling1D(3)(x1).numpy(), np.repeat(x1, 3, axis=1))
    x3 = rng.standard_normal((2, 3, 4, 5, 2)).astype(np.float32)
    pads = ((1, 0), (0, 2), (1, 1))
    np.testing.assert_array_equal(layers.ZeroPadding3D(pads)(x3).numpy(), np.pad(x3, ((0, 0), *pads, (0, 0))))
    np.testing.assert_array_equal(layers.Cropping3D(((1, 0), (0, 2), (1, 1)))(x3).numpy(), x3[:, 1:, :2, 1:4])
    np.testing.assert_array_equal(layers.UpSampling3D((2, 1, 3))(x3).numpy(),
                                  np.repeat(np.repeat(x3, 2, axis=1), 3, axis=3))


@pytest.mark.parametrize("layer", [
    lambda: layers.ZeroPadding1D((2, 1), dtype="float64"), lambda: layers.Cropping1D((1, 2), dtype="float64"),
    lambda: layers.UpSampling1D(2, dtype="float64"), lambda: layers.ZeroPadding3D((1, 0, 1), dtype="float64"),
    lambda: layers.Cropping3D(((1, 0), (0, 1), (1, 1)), dtype="float64"),
    lambda: layers.UpSampling3D((2, 1, 2), dtype="float64"),
    lambda: layers.UpSampling2D((3, 2), interpolation="bilinear", dtype="float64"),
])
def test_gradients_finite_differences(layer):
    made = layer()
    shape = (2, 4, 3) if made._rank == 1 else (1, 3, 4, 2) if made._rank == 2 else (1, 2, 3, 4, 2)
    check_gradients(made, [np.random.default_rng(1).standard_normal(shape)])


@pytest.mark.parametrize("size,shape", [((2, 2), (2, 3, 4, 2)), ((3, 2), (1, 5, 3, 1)), ((4, 1), (1, 1, 2, 3)),
                                        ((1, 5), (2, 2, 2, 2))])
def test_bilinear_upsampling_matches_torch(size, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    out_shape = (shape[0], shape[1] * size[0], shape[2] * size[1], shape[3])
    up = rng.standard_normal(out_shape).astype(np.float32)
    out, (gx,) = grads_of(layers.UpSampling2D(size, interpolation="bilinear"), [x], [], up)
    tx = torch.tensor(x, requires_grad=True)
    # half-pixel centres, edges clamped: what Keras's resize does on each of its backends
    ref = to_nhwc(torch.nn.functional.interpolate(to_nchw(torch, tx), scale_factor=size, mode="bilinear",
                                                  align_corners=False))
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out, ref)
    assert_close(gx, tx.grad, atol=1e-4)


@pytest.mark.parametrize("make,error,match", [
    (lambda: layers.ZeroPadding1D(-1, name="zp"), ValueError, r"'zp'.*ZeroPadding1D.*padding=-1"),
    (lambda: layers.ZeroPadding1D((1, 2, 3), name="zp"), ValueError, r"'zp'.*padding=\(1, 2, 3\)"),
    (lambda: layers.Cropping1D(((1, 1),), name="cr"), ValueError, r"'cr'.*Cropping1D.*cropping"),
    (lambda: layers.Cropping1D(data_format="channels_last"), TypeError, r"data_format"),
    (lambda: layers.UpSampling1D(2.0), TypeError, r"UpSampling1D.*size=2.0"),
    (lambda: layers.UpSampling1D(0, name="up"), ValueError, r"'up'.*size"),
    (lambda: layers.ZeroPadding3D((1, 2), name="zp"), ValueError, r"'zp'.*ZeroPadding3D.*tuple of 3"),
    (lambda: layers.Cropping3D(((1, 1), (1, 1), (1, -1)), name="cr"), ValueError, r"'cr'.*Cropping3D.*cropping"),
    (lambda: layers.UpSampling3D((2, 2), name="up"), ValueError, r"'up'.*size"),
    (lambda: layers.UpSampling3D(data_format="channels_first"), ValueError, r"data_format"),
    (lambda: layers.UpSampling3D(interpolation="bilinear"), TypeError, r"interpolation"),
    (lambda: layers.ZeroPadding1D(data_format="channels_first"), ValueError, r"data_format"),
])
def test_bad_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_shapes_name_the_layer():
    with pytest.raises(ValueError, match=r"'cr'.*Cropping1D.*removes every step.*\(2, 3, 1\)"):
        layers.Cropping1D((2, 1), name="cr")(np.zeros((2, 3, 1), np.float32))
    with pytest.raises(ValueError, match=r"'cr'.*Cropping3D.*removes every depth slice"):
        layers.Cropping3D(((1, 1), (0, 0), (0, 0)), name="cr")(dlgpu.Input((2, 3, 3, 1)))
    with pytest.raises(ValueError, match=r"'zp'.*ndim=3.*ndim=4"):
        layers.ZeroPadding1D(name="zp")(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"'up'.*ndim=5.*ndim=4"):
        layers.UpSampling3D(name="up")(np.zeros((2, 3, 4, 5), np.float32))


def test_unknown_sizes_stay_unknown():
    assert layers.UpSampling1D(2)(dlgpu.Input((None, 3))).shape == (None, None, 3)
    assert layers.ZeroPadding3D(1)(dlgpu.Input((None, 4, None, 2))).shape == (None, None, 6, None, 2)
    assert layers.UpSampling2D(interpolation="bilinear")(dlgpu.Input((None, 4, 2))).shape == (None, None, 8, 2)


@pytest.mark.gpu
def test_bilinear_upsampling_and_3d_layers_on_gpu_match_cpu():
    rng = np.random.default_rng(3)
    x2 = rng.standard_normal((2, 3, 5, 2)).astype(np.float32)
    x3 = rng.standard_normal((1, 2, 3, 4, 2)).astype(np.float32)
    results = {}
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            a, b = ops.convert_to_tensor(x2), ops.convert_to_tensor(x3)
            with dlgpu.GradientTape() as tape:
                tape.watch([a, b])
                y2 = layers.UpSampling2D((3, 2), interpolation="bilinear")(a)
                y3 = layers.Cropping3D(((1, 0), (0, 1), (1, 1)))(layers.UpSampling3D()(layers.ZeroPadding3D(1)(b)))
                loss = ops.add(ops.sum(ops.square(y2)), ops.sum(ops.square(y3)))
            grads = tape.gradient(loss, [a, b])
            results[device] = [y2.numpy(), y3.numpy()] + [g.numpy() for g in grads]
    for got, want in zip(results["gpu"], results["cpu"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
