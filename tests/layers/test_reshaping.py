"""ZeroPadding2D, Cropping2D, UpSampling2D, Permute, RepeatVector, Rescaling: contract, PyTorch CPU and finite
differences as references, bad arguments."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers

from helpers import check_gradients
from .layer_test_case import run_layer_test
from .torch_ref import assert_close, grads_of, to_nchw, to_nhwc


@pytest.mark.parametrize("cls,kwargs,in_shape,out_shape", [
    (layers.ZeroPadding2D, {}, (2, 4, 5, 3), (2, 6, 7, 3)),
    (layers.ZeroPadding2D, {"padding": (2, 0)}, (2, 4, 5, 3), (2, 8, 5, 3)),
    (layers.ZeroPadding2D, {"padding": ((1, 2), (0, 3))}, (2, 4, 5, 3), (2, 7, 8, 3)),
    (layers.Cropping2D, {"cropping": 1}, (2, 4, 5, 3), (2, 2, 3, 3)),
    (layers.Cropping2D, {"cropping": ((0, 2), (1, 0))}, (2, 4, 5, 3), (2, 2, 4, 3)),
    (layers.UpSampling2D, {}, (2, 4, 5, 3), (2, 8, 10, 3)),
    (layers.UpSampling2D, {"size": (3, 1)}, (2, 4, 5, 3), (2, 12, 5, 3)),
    (layers.Permute, {"dims": (2, 1)}, (2, 4, 5), (2, 5, 4)),
    (layers.Permute, {"dims": (3, 1, 2)}, (2, 4, 5, 3), (2, 3, 4, 5)),
    (layers.RepeatVector, {"n": 3}, (2, 4), (2, 3, 4)),
    (layers.Rescaling, {"scale": 1 / 255}, (2, 4, 5, 3), (2, 4, 5, 3)),
    (layers.Rescaling, {"scale": [0.5, 1.0, 2.0], "offset": -1.0}, (2, 4, 5, 3), (2, 4, 5, 3)),
])
def test_reshaping_layer_contract(cls, kwargs, in_shape, out_shape):
    run_layer_test(cls, kwargs, in_shape, out_shape)


def test_output_shapes_keep_unknown_sizes():
    assert layers.ZeroPadding2D(1).compute_output_shape((None, None, 5, 3)) == (None, None, 7, 3)
    assert layers.Cropping2D(1).compute_output_shape((None, 6, None, 3)) == (None, 4, None, 3)
    assert layers.UpSampling2D(2).compute_output_shape((None, None, 5, 3)) == (None, None, 10, 3)
    assert layers.Permute((2, 1))(dlgpu.Input(shape=(None, 7))).shape == (None, 7, None)
    assert layers.RepeatVector(4)(dlgpu.Input(shape=(6,))).shape == (None, 4, 6)


PADDINGS = [1, (2, 1), ((1, 2), (0, 3))]


@pytest.mark.parametrize("padding", PADDINGS)
def test_zero_padding_matches_torch(padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    layer = layers.ZeroPadding2D(padding)
    up = rng.standard_normal(layer.compute_output_shape(x.shape)).astype(np.float32)
    out, (gx,) = grads_of(layer, [x], [], up)
    (top, bottom), (left, right) = layer.padding
    tx = torch.tensor(x, requires_grad=True)
    ref = to_nhwc(torch.nn.functional.pad(to_nchw(torch, tx), (left, right, top, bottom)))
    (ref * torch.tensor(up)).sum().backward()
    assert out.shape == tuple(ref.shape)
    assert_close(out, ref)
    assert_close(gx, tx.grad)


@pytest.mark.parametrize("cropping", [1, (0, 2), ((1, 2), (0, 3)), ((0, 0), (2, 0))])
def test_cropping_matches_torch(cropping):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    layer = layers.Cropping2D(cropping)
    up = rng.standard_normal(layer.compute_output_shape(x.shape)).astype(np.float32)
    out, (gx,) = grads_of(layer, [x], [], up)
    (top, bottom), (left, right) = layer.cropping
    tx = torch.tensor(x, requires_grad=True)
    # negative padding crops in F.pad
    ref = to_nhwc(torch.nn.functional.pad(to_nchw(torch, tx), (-left, -right, -top, -bottom)))
    (ref * torch.tensor(up)).sum().backward()
    assert out.shape == tuple(ref.shape)
    assert_close(out, ref)
    assert_close(gx, tx.grad)


@pytest.mark.parametrize("size", [2, (1, 3), (3, 2)])
def test_upsampling_nearest_matches_torch(size):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    layer = layers.UpSampling2D(size)
    up = rng.standard_normal(layer.compute_output_shape(x.shape)).astype(np.float32)
    out, (gx,) = grads_of(layer, [x], [], up)
    tx = torch.tensor(x, requires_grad=True)
    ref = to_nhwc(torch.nn.Upsample(scale_factor=layer.size, mode="nearest")(to_nchw(torch, tx)))
    (ref * torch.tensor(up)).sum().backward()
    assert out.shape == tuple(ref.shape)
    assert_close(out, ref)
    assert_close(gx, tx.grad)


def test_permute_and_repeat_vector_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    up = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    out, (gx,) = grads_of(layers.Permute((3, 1, 2)), [x], [], up)
    tx = torch.tensor(x, requires_grad=True)
    ref = tx.permute(0, 3, 1, 2)
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out, ref)
    assert_close(gx, tx.grad)

    v = rng.standard_normal((2, 4)).astype(np.float32)
    up = rng.standard_normal((2, 3, 4)).astype(np.float32)
    out, (gv,) = grads_of(layers.RepeatVector(3), [v], [], up)
    tv = torch.tensor(v, requires_grad=True)
    ref = tv.unsqueeze(1).repeat(1, 3, 1)
    (ref * torch.tensor(up)).sum().backward()
    assert_close(out, ref)
    assert_close(gv, tv.grad)


def test_rescaling_values_and_gradient():
    x = np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3)
    out = layers.Rescaling(1 / 127.5, offset=-1)(x).numpy()
    assert out.dtype == np.float32  # integer images come out float32
    np.testing.assert_allclose(out, x / 127.5 - 1, rtol=1e-6)
    per_channel = layers.Rescaling([1.0, 10.0, 100.0], offset=[0.0, 1.0, 2.0])(x).numpy()
    np.testing.assert_allclose(per_channel, x * np.array([1, 10, 100]) + np.array([0, 1, 2]), rtol=1e-6)
    rng = np.random.default_rng(4)
    xf = rng.standard_normal((2, 3, 3)).astype(np.float32)
    up = rng.standard_normal(xf.shape).astype(np.float32)
    _, (gx,) = grads_of(layers.Rescaling([0.5, 2.0, -3.0], offset=4.0), [xf], [], up)
    np.testing.assert_allclose(gx, up * np.array([0.5, 2.0, -3.0]), rtol=1e-6)


@pytest.mark.parametrize("layer", [
    layers.ZeroPadding2D(((1, 2), (0, 3)), dtype="float64"),
    layers.Cropping2D(((1, 0), (0, 2)), dtype="float64"),
    layers.UpSampling2D((2, 3), dtype="float64"),
    layers.Permute((3, 1, 2), dtype="float64"),
    layers.Rescaling([0.5, 2.0], offset=1.0, dtype="float64"),
], ids=lambda layer: type(layer).__name__)
def test_reshaping_layer_gradient_finite_differences(layer):
    check_gradients(layer, [np.random.default_rng(5).standard_normal((2, 4, 3, 2))])


def test_repeat_vector_gradient_finite_differences():
    check_gradients(layers.RepeatVector(3, dtype="float64"), [np.random.default_rng(6).standard_normal((2, 4))])


def test_upsampling_other_interpolations_not_implemented():
    with pytest.raises(NotImplementedError, match=r"'up'.*interpolation='lanczos3'.*nearest.*bilinear"):
        layers.UpSampling2D(interpolation="lanczos3", name="up")
    with pytest.raises(NotImplementedError, match="bicubic"):
        layers.UpSampling2D(interpolation="bicubic")
    with pytest.raises(ValueError, match=r"interpolation='area'"):
        layers.UpSampling2D(interpolation="area")


@pytest.mark.parametrize("make,match", [
    (lambda: layers.ZeroPadding2D(-1, name="zp"), r"'zp'.*ZeroPadding2D.*padding=-1"),
    (lambda: layers.ZeroPadding2D((1, 2, 3), name="zp"), r"'zp'.*padding=\(1, 2, 3\)"),
    (lambda: layers.ZeroPadding2D(((1, 2), (0,)), name="zp"), r"'zp'.*padding="),
    (lambda: layers.ZeroPadding2D(1.5), r"ZeroPadding2D.*padding=1.5"),
    (lambda: layers.Cropping2D("1", name="cr"), r"'cr'.*Cropping2D.*cropping='1'"),
    (lambda: layers.UpSampling2D(0, name="up"), r"'up'.*size"),
    (lambda: layers.Permute((1, 3), name="pm"), r"'pm'.*Permute.*dims=\(1, 3\)"),
    (lambda: layers.Permute((0, 1)), r"Permute.*dims"),
    (lambda: layers.RepeatVector(0, name="rv"), r"'rv'.*RepeatVector.*n=0"),
    (lambda: layers.RepeatVector(2.5), r"RepeatVector.*n=2.5"),
    (lambda: layers.Rescaling("half", name="rs"), r"'rs'.*Rescaling.*scale='half'"),
    (lambda: layers.Rescaling(1.0, offset=[1, [2]]), r"Rescaling.*offset"),
    (lambda: layers.ZeroPadding2D(data_format="channels_first"), r"data_format"),
])
def test_reshaping_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_cropping_everything_is_an_error_naming_the_layer():
    with pytest.raises(ValueError, match=r"'crop'.*Cropping2D.*cropping"):
        layers.Cropping2D(((2, 2), (0, 0)), name="crop")(np.zeros((1, 4, 5, 1), np.float32))
    with pytest.raises(ValueError, match=r"Cropping2D.*cropping"):
        layers.Cropping2D(((0, 0), (3, 3)))(dlgpu.Input(shape=(8, 6, 1)))
    # sizes unknown when built: checked when data arrives
    layer = layers.Cropping2D(((0, 0), (3, 3)), name="late")
    layer(dlgpu.Input(shape=(None, None, 1)))
    with pytest.raises(ValueError, match=r"'late'.*\(1, 5, 6, 1\)"):
        layer(np.zeros((1, 5, 6, 1), np.float32))


def test_wrong_rank_names_the_layer():
    with pytest.raises(ValueError, match=r"'zp'.*ndim=4.*ndim=3"):
        layers.ZeroPadding2D(name="zp")(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"'rv'.*ndim=2.*ndim=3"):
        layers.RepeatVector(2, name="rv")(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"'pm'.*ndim=3.*ndim=4"):
        layers.Permute((2, 1), name="pm")(np.zeros((2, 3, 4, 5), np.float32))
