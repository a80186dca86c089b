"""keras.ops.image against real Keras 3.15.1 (torch backend): values, dtypes, gradients and symbolic shapes
of every image op, both data formats, batched and single images; plus the coverage of keras.ops' public
namespaces (image, nn, numpy, linalg) in dlgpu.ops.

Rows as in test_ops.py: ``fn(ops, *tensors)`` runs with keras.ops and with dlgpu.ops; ``grad`` compares the
gradients of sum(out^2) with respect to the float inputs; ``unknown`` lists the inputs whose first axis is
None in the symbolic check (None: no symbolic check).  gaussian_blur rows always pass data_format: Keras's
torch backend reads data_format=None as channels_first there (it does not standardize it).
"""

import numpy as np
import pytest

import dlgpu
from dlgpu import ops as dops
from tests.keras_reference.test_ops import _dlgpu_run, _outs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

RNG = np.random.default_rng(1)


def F(*shape, low=0.0, high=1.0, dtype="float32"):
    return RNG.uniform(low, high, shape).astype(dtype)


def U8(*shape):
    return RNG.integers(0, 256, shape).astype("uint8")


def case(name, fn, inputs, grad=True, unknown=(0,), rtol=1e-5, atol=1e-6, id=None):  # noqa: A002
    return pytest.param(name, fn, inputs, grad, unknown, rtol, atol, id=id)


IMG, IMG_CF, ONE = F(2, 9, 10, 3), F(2, 3, 9, 10), F(9, 10, 3)
CL, CFD = "channels_last", "channels_first"
def _keras_run(keras, fn, inputs, grad):
    """test_ops._keras_run, with the gradient of an input the output does not depend on (the coordinates of
    nearest-neighbour sampling) as zeros."""
    import torch
    xs = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in inputs]
    with torch.enable_grad():
        outs = _outs(fn(keras.ops, *xs))
        wanted = [x for x in xs if x.requires_grad]
        grads = None
        if wanted:
            loss = sum(o.pow(2).sum() for o in outs if o.is_floating_point())
            grads = [np.zeros(x.shape, "float32") if g is None else g.numpy()
                     for x, g in zip(wanted, torch.autograd.grad(loss, wanted, allow_unused=True))]
    return [(o.detach().numpy(), str(o.dtype).replace("torch.", "")) for o in outs], grads


SQUARE = np.array([[0, 0], [0, 9], [10, 0], [10, 9]], "float32")
MOVED = np.array([[[1.5, -0.5], [0.2, 8.0], [9.3, 1.1], [10.4, 9.6]], [[0.0, 1.0], [-1.0, 9.5], [8.0, 0.2], [11, 8]]],
                 "float32")
COORDS = RNG.uniform(-2.5, 11.5, (2, 4, 5)).astype("float32")


def _scale(o, x, method, scale, translation, antialias=True, shape=(2, 6, 14, 3)):
    return o.image.scale_and_translate(x, shape, np.array(scale, "float32"), np.array(translation, "float32"),
                                       (1, 2), method, antialias)


CASES = [
    case("rgb_to_grayscale", lambda o, x: o.image.rgb_to_grayscale(x), [IMG], id="grayscale"),
    case("rgb_to_grayscale", lambda o, x: o.image.rgb_to_grayscale(x, CFD), [F(3, 5, 4)], unknown=None,
         id="grayscale_cf_single"),
    case("rgb_to_grayscale", lambda o, x: o.image.rgb_to_grayscale(x), [F(2, 4, 5, 1)], id="grayscale_one_channel"),
    case("rgb_to_grayscale", lambda o, x: o.image.rgb_to_grayscale(x), [U8(2, 4, 5, 3)], id="grayscale_uint8"),
    case("rgb_to_hsv", lambda o, x: o.image.rgb_to_hsv(x), [IMG], id="rgb_to_hsv"),
    case("rgb_to_hsv", lambda o, x: o.image.rgb_to_hsv(x, CFD), [IMG_CF], id="rgb_to_hsv_cf"),
    case("rgb_to_hsv", lambda o, x: o.image.rgb_to_hsv(x), [ONE], unknown=None, id="rgb_to_hsv_single"),
    case("hsv_to_rgb", lambda o, x: o.image.hsv_to_rgb(x), [IMG], id="hsv_to_rgb"),
    case("hsv_to_rgb", lambda o, x: o.image.hsv_to_rgb(x, CFD), [F(3, 6, 5)], unknown=None, id="hsv_to_rgb_cf"),
    case("gaussian_blur", lambda o, x: o.image.gaussian_blur(x, data_format=CL), [IMG], id="blur"),
    case("gaussian_blur", lambda o, x: o.image.gaussian_blur(x, (5, 5), (1.5, 0.7), CFD), [IMG_CF], id="blur_cf"),
    case("gaussian_blur", lambda o, x: o.image.gaussian_blur(x, (7, 7), (2.0, 2.0), CL), [ONE], unknown=None,
         id="blur_single"),
    case("sobel_edges", lambda o, x: o.image.sobel_edges(x), [IMG], id="sobel"),
    case("sobel_edges", lambda o, x: o.image.sobel_edges(x, CFD), [IMG_CF], id="sobel_cf"),
    case("ssim", lambda o, a, b: o.image.ssim(a, b), [F(2, 12, 13, 3), F(2, 12, 13, 3)], unknown=(0, 1), id="ssim"),
    case("ssim", lambda o, a, b: o.image.ssim(a, b, 255.0, 5, 0.8, data_format=CFD),
         [F(3, 8, 9, high=255), F(3, 8, 9, high=255)], unknown=None, rtol=1e-4, id="ssim_cf_single"),
    case("crop_images", lambda o, x: o.image.crop_images(x, 1, 2, target_height=5, target_width=6), [IMG], id="crop"),
    case("crop_images", lambda o, x: o.image.crop_images(x, None, 3, 2, 1, 4, data_format=CFD), [IMG_CF],
         id="crop_cf"),
    case("crop_images", lambda o, x: o.image.crop_images(x, 0, 0, 2, 2), [ONE], unknown=None, id="crop_single"),
    case("pad_images", lambda o, x: o.image.pad_images(x, 2, 3, target_height=12, target_width=15), [IMG], id="pad"),
    case("pad_images", lambda o, x: o.image.pad_images(x, None, 1, 2, 0, 13, data_format=CFD), [IMG_CF],
         id="pad_cf"),
    case("extract_patches_3d", lambda o, x: o.image.extract_patches_3d(x, (2, 3, 2)), [F(2, 5, 6, 7, 2)],
         id="patches_3d"),
    case("extract_patches_3d", lambda o, x: o.image.extract_patches_3d(x, 2, strides=1, padding="same"),
         [F(3, 4, 5, 2)], unknown=None, id="patches_3d_same_single"),
    case("extract_patches_3d", lambda o, x: o.image.extract_patches_3d(x, 3, (1, 2, 1), 1, data_format=CFD),
         [F(1, 2, 5, 6, 5)], id="patches_3d_cf"),
    case("extract_patches", lambda o, x: o.image.extract_patches(x, (2, 2, 3)), [F(2, 4, 4, 6, 1)],
         id="patches_three_sizes"),
    case("extract_patches", lambda o, x: o.image.extract_patches(x, 3, 2, data_format=CFD), [IMG_CF],
         id="patches_cf"),
    # Keras's torch affine_transform writes into its transform: a constant here, not a differentiated input
    case("affine_transform", lambda o, x: o.image.affine_transform(x, np.array([[1.1, 0.2, -1, 0.1, 0.9, 0.5, 0, 0]] * 2,
         "float32"), data_format=CFD), [IMG_CF], unknown=None, id="affine_cf"),
    case("resize", lambda o, x: o.image.resize(x, (5, 13), data_format=CFD), [IMG_CF], id="resize_cf"),
    case("perspective_transform", lambda o, x, s, e: o.image.perspective_transform(x, s, e), [IMG, SQUARE, MOVED[0]],
         id="perspective"),
    case("perspective_transform", lambda o, x, s, e: o.image.perspective_transform(x, s, e, "nearest", 0.5, CFD),
         [IMG_CF, np.stack([SQUARE] * 2), MOVED], unknown=None, id="perspective_nearest_cf"),
    case("perspective_transform", lambda o, x, s, e: o.image.perspective_transform(x, s, e, fill_value=-1.0),
         [ONE, MOVED[1], SQUARE], unknown=None, id="perspective_single"),
    case("scale_and_translate", lambda o, x: _scale(o, x, "linear", [0.7, 1.4], [0.3, -0.2]), [IMG],
         unknown=None, id="scale_linear"),
    case("scale_and_translate", lambda o, x: _scale(o, x, "bicubic", [0.7, 1.4], [0.3, -0.2], False), [IMG],
         unknown=None, id="scale_cubic_no_antialias"),
    case("scale_and_translate", lambda o, x: _scale(o, x, "lanczos3", [0.5, 2.0], [0.0, 1.0]), [IMG],
         unknown=None, id="scale_lanczos3"),
    case("scale_and_translate", lambda o, x: _scale(o, x, "lanczos5", [1.3, 0.6], [-1.0, 0.5]), [IMG],
         unknown=None, rtol=1e-4, id="scale_lanczos5"),
    case("scale_and_translate", lambda o, x: _scale(o, x, "linear", [0.7, 1.4], [0.3, -0.2]), [U8(2, 9, 10, 3)],
         grad=False, unknown=None, id="scale_uint8"),
]

for _mode in ("constant", "nearest", "wrap", "mirror", "reflect"):
    for _order in (0, 1):
        CASES.append(case("map_coordinates", lambda o, x, c, m=_mode, k=_order: o.image.map_coordinates(x, c, k, m, 0.5),
                          [F(9, 10), COORDS], unknown=None, id=f"map_coordinates_{_mode}_{_order}"))
CASES.append(case("map_coordinates", lambda o, x, c: o.image.map_coordinates(x, c, 1, "reflect"),
                  [F(4, 5, 3), RNG.uniform(-1, 5, (3, 7)).astype("float32")], unknown=(0,), id="map_coordinates_3d"))
CASES.append(case("map_coordinates", lambda o, x, c: o.image.map_coordinates(x, c, 1),
                  [U8(6, 7), RNG.uniform(-1, 7, (2, 3, 3)).astype("float32")], grad=False, unknown=None,
                  id="map_coordinates_uint8"))


@pytest.mark.parametrize("name, fn, inputs, grad, unknown, rtol, atol", CASES)
def test_image_ops_match_keras(keras, name, fn, inputs, grad, unknown, rtol, atol):
    k_outs, k_grads = _keras_run(keras, fn, inputs, grad)
    d_outs, d_grads = _dlgpu_run(fn, inputs, grad)
    for (dv, dt), (kv, kt) in zip(d_outs, k_outs):
        assert dt == kt, f"{name}: dtype {dt}, Keras gives {kt}"
        assert dv.shape == kv.shape, f"{name}: shape {dv.shape}, Keras gives {kv.shape}"
        if dt == "uint8":  # rounding of values computed in float32 may differ by one step at a .5
            assert np.abs(dv.astype(int) - kv.astype(int)).max() <= 1, name
        else:
            np.testing.assert_allclose(dv, kv, rtol=rtol, atol=atol, err_msg=name)
    if grad and k_grads is not None:
        for i, (dg, kg) in enumerate(zip(d_grads, k_grads)):
            if dg is None:
                assert not np.any(kg), f"{name}: input {i} has no gradient in dlgpu, Keras gives {kg}"
                continue
            np.testing.assert_allclose(dg, kg, rtol=max(rtol, 1e-4), atol=2e-5, err_msg=f"{name} gradient {i}")


SYMBOLIC_CASES = [c for c in CASES if c.values[4] is not None]


@pytest.mark.parametrize("name, fn, inputs, grad, unknown, rtol, atol", SYMBOLIC_CASES)
def test_image_ops_symbolic_shapes_match_keras(keras, name, fn, inputs, grad, unknown, rtol, atol):
    shapes = [((None,) + a.shape[1:]) if i in unknown else a.shape for i, a in enumerate(inputs)]
    k_outs = [(tuple(o.shape), str(o.dtype)) for o in
              _outs(fn(keras.ops, *[keras.KerasTensor(s, dtype=str(a.dtype)) for s, a in zip(shapes, inputs)]))]
    d_outs = _outs(fn(dops, *[dlgpu.Input(batch_shape=s, dtype=str(a.dtype)) for s, a in zip(shapes, inputs)]))
    assert [(tuple(o.shape), str(o.dtype)) for o in d_outs] == k_outs, name


@pytest.mark.parametrize("interpolation, fill_mode, data_format", [("bilinear", "reflect", CL),
                                                                    ("nearest", "constant", CFD),
                                                                    ("bilinear", "wrap", CL)])
def test_elastic_transform_matches_keras_given_its_draws(keras, interpolation, fill_mode, data_format):
    """Keras's torch backend draws the two displacement fields from torch's global generator: drawn again
    with the same seed, they drive dlgpu's deterministic part, whose values and gradients must then match."""
    import torch

    from dlgpu.ops.image import _elastic_warp
    x = F(2, 12, 11, 3)
    xin = x if data_format == CL else x.transpose(0, 3, 1, 2)
    xt = torch.tensor(xin, requires_grad=True)
    torch.manual_seed(7)
    with torch.enable_grad():
        k_out = keras.ops.image.elastic_transform(xt, 3.0, 1.3, interpolation, fill_mode, 0.25,
                                                  data_format=data_format)
        (k_grad,) = torch.autograd.grad((k_out ** 2).sum(), [xt])
    torch.manual_seed(7)
    dx, dy = (torch.normal(0.0, 1.0, size=(2, 12, 11)).numpy() for _ in range(2))
    xd = dlgpu.Tensor(x)
    with dlgpu.GradientTape() as tape:
        tape.watch(xd)
        out = _elastic_warp(xd, dx, dy, 3.0, 1.3, interpolation, fill_mode, 0.25)
        loss = dops.sum(dops.square(out))
    grad = tape.gradient(loss, xd).numpy()
    if data_format == CFD:
        out, grad = dops.transpose(out, (0, 3, 1, 2)), grad.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out.numpy(), k_out.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, k_grad.numpy(), rtol=1e-4, atol=1e-5)


def test_elastic_transform_seed_and_alpha():
    x = F(2, 8, 9, 3)
    a = dops.image.elastic_transform(x, seed=3).numpy()
    np.testing.assert_array_equal(a, dops.image.elastic_transform(x, seed=3).numpy())
    assert not np.allclose(a, dops.image.elastic_transform(x, seed=4).numpy())
    # no displacement: every pixel reads itself
    np.testing.assert_allclose(dops.image.elastic_transform(x, alpha=0.0, seed=1).numpy(), x, rtol=1e-6)
    single = dops.image.elastic_transform(x[0].transpose(2, 0, 1), seed=5, data_format=CFD)
    assert single.shape == (3, 8, 9) and single.dtype == "float32"


def test_map_coordinates_takes_a_list_of_coordinate_arrays(keras):
    import torch
    x, c = F(6, 7), COORDS[:, :2] * 0.5
    k = keras.ops.image.map_coordinates(torch.tensor(x), [torch.tensor(c[0]), torch.tensor(c[1])], 1, "nearest")
    d = dops.image.map_coordinates(x, [c[0], c[1]], 1, "nearest")
    np.testing.assert_allclose(d.numpy(), k.numpy(), rtol=1e-6)


@pytest.mark.parametrize("call, error, match", [
    (lambda: dops.image.rgb_to_grayscale(F(2, 4, 4, 2)), ValueError, "rgb_to_grayscale.*3 channels"),
    (lambda: dops.image.rgb_to_hsv(U8(4, 4, 3)), ValueError, "rgb_to_hsv.*float"),
    (lambda: dops.image.hsv_to_rgb(F(4, 4)), ValueError, r"hsv_to_rgb.*rank 3.*\(4, 4\)"),
    (lambda: dops.image.gaussian_blur(IMG, (3, 0)), ValueError, "gaussian_blur.*kernel_size"),
    (lambda: dops.image.gaussian_blur(IMG, sigma=-1.0), ValueError, "gaussian_blur.*sigma"),
    (lambda: dops.image.sobel_edges(ONE), ValueError, "sobel_edges.*rank 4"),
    (lambda: dops.image.ssim(IMG, IMG[:1]), ValueError, "ssim.*same shape"),
    (lambda: dops.image.ssim(IMG, IMG), ValueError, "ssim.*smaller than the 11x11 filter"),
    (lambda: dops.image.crop_images(IMG, 1, 1), ValueError, "crop_images.*exactly two of top_cropping"),
    (lambda: dops.image.crop_images(IMG, 5, 0, target_height=6, target_width=2), ValueError,
     "crop_images.*does not fit"),
    (lambda: dops.image.pad_images(IMG, 1, 1, target_height=5, target_width=12), ValueError,
     "pad_images: bottom_padding must be >= 0"),
    (lambda: dops.image.pad_images(IMG, -1, 1, 1, 1), ValueError, "pad_images: top_padding must be an integer >= 0"),
    (lambda: dops.image.extract_patches_3d(ONE, 2), ValueError, "extract_patches_3d.*rank 4.*rank 5"),
    (lambda: dops.image.extract_patches_3d(F(4, 4, 4, 1), 2, strides=(1, 1)), ValueError, "strides"),
    (lambda: dops.image.map_coordinates(F(4, 4), COORDS[:1], 1), ValueError, "map_coordinates.*first dim"),
    (lambda: dops.image.map_coordinates(F(4, 4), COORDS, 3), ValueError, "map_coordinates.*order"),
    (lambda: dops.image.map_coordinates(F(4, 4), COORDS, 1, "edge"), ValueError, "map_coordinates.*fill_mode"),
    (lambda: dops.image.perspective_transform(IMG, SQUARE[:3], SQUARE[:3]), ValueError, "start_points shape"),
    (lambda: dops.image.perspective_transform(IMG, SQUARE, MOVED), ValueError, "same shape"),
    (lambda: dops.image.perspective_transform(IMG, SQUARE, SQUARE, "bicubic"), ValueError, "interpolation"),
    (lambda: dops.image.elastic_transform(IMG, fill_mode="edge"), ValueError, "elastic_transform.*fill_mode"),
    (lambda: dops.image.scale_and_translate(IMG, (2, 4, 4, 3), [1, 1], [0, 0], (1, 2), "area"), ValueError,
     "scale_and_translate.*method"),
    (lambda: dops.image.scale_and_translate(IMG, (3, 4, 4, 3), [1, 1], [0, 0], (1, 2), "linear"), ValueError,
     "outside spatial_dims"),
    (lambda: dops.image.scale_and_translate(IMG, (2, 4, 4, 3), [1], [0, 0], (1, 2), "linear"), ValueError,
     "one value per spatial dim"),
    (lambda: dops.image.rgb_to_hsv(IMG, data_format="NHWC"), ValueError, "rgb_to_hsv.*data_format"),
])
def test_image_ops_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_image_ops_in_a_functional_model_trained_saved_and_loaded(tmp_path):
    """A graph of image ops (KerasTensors in, OpLayer nodes) that trains a Dense head, and reloads."""
    inputs = dlgpu.Input((10, 12, 3))
    x = dops.image.gaussian_blur(inputs, (3, 3), (1.0, 1.0), "channels_last")
    x = dops.image.rgb_to_hsv(dops.clip(x, 0.0, 1.0))
    x = dops.image.crop_images(x, 1, 1, target_height=8, target_width=10)
    x = dops.image.sobel_edges(x)
    outputs = dlgpu.layers.Dense(1)(dlgpu.layers.Flatten()(x))
    model = dlgpu.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    data, target = F(16, 10, 12, 3), F(16, 1)
    before = model.evaluate(data, target, verbose=0)
    model.fit(data, target, epochs=3, batch_size=8, verbose=0)
    assert model.evaluate(data, target, verbose=0) < before
    path = tmp_path / "image_ops.keras"
    model.save(path)
    loaded = dlgpu.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(data, verbose=0), model.predict(data, verbose=0), rtol=1e-5, atol=1e-6)


# -- the public namespaces -------------------------------------------------------------------------------

# keras.ops.<namespace> names dlgpu.ops.<namespace> may lack, with the reason (none today)
NAMESPACE_EXCEPTIONS = {}


def _public(module):
    return {n for n in dir(module) if not n.startswith("_")}


@pytest.mark.parametrize("namespace", ["image", "nn", "numpy", "linalg"])
def test_every_keras_ops_namespace_name_is_in_dlgpu(keras, namespace):
    k = getattr(keras.ops, namespace)
    d = getattr(dops, namespace)
    missing = {n for n in _public(k) if callable(getattr(k, n)) and not callable(getattr(d, n, None))}
    assert missing <= set(NAMESPACE_EXCEPTIONS.get(namespace, ())), f"dlgpu.ops.{namespace} lacks {sorted(missing)}"


@pytest.mark.parametrize("namespace", ["image", "nn", "numpy"])
def test_namespace_all_is_exactly_keras_and_binds_the_public_ops(keras, namespace):
    """__all__ lists exactly Keras's names, each the op dlgpu.ops exports (the one that takes KerasTensors)."""
    k = getattr(keras.ops, namespace)
    d = getattr(dops, namespace)
    assert set(d.__all__) == {n for n in _public(k) if callable(getattr(k, n))}
    if namespace != "image":
        assert all(getattr(d, n) is getattr(dops, n) for n in d.__all__)
    # vectorize takes and returns a function: the function it returns is where tensors go in
    assert all(getattr(getattr(d, n), "_dlgpu_op", None) for n in d.__all__ if n != "vectorize")
    x = dlgpu.Input((4, 4, 3))
    assert dops.nn.relu(x).shape == (None, 4, 4, 3) and dops.numpy.sum(x, axis=-1).shape == (None, 4, 4)


def test_namespace_internals_stay_importable():
    import numpy

    from dlgpu.ops.nn import ACTIVATION_NAMES, dropout_mask, seeded_generator
    assert "relu" in ACTIVATION_NAMES and callable(dropout_mask) and callable(seeded_generator)
    assert dops.numpy is not numpy and dops.numpy.pad is dops.pad and numpy.pad is not dops.pad


# -- GPU ---------------------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("name, fn, inputs, grad, unknown, rtol, atol", CASES)
def test_image_ops_gpu_match_cpu(name, fn, inputs, grad, unknown, rtol, atol):
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            xs = [dops.convert_to_tensor(a, dtype=a.dtype) for a in inputs]
            wanted = [x for x, a in zip(xs, inputs) if grad and a.dtype.kind == "f"]
            with dlgpu.GradientTape() as tape:
                tape.watch(wanted)
                outs = _outs(fn(dops, *xs))
                floats = [o for o in outs if o.dtype.startswith("float")]
                loss = sum(dops.sum(dops.square(o)) for o in floats) if floats else None
            grads = tape.gradient(loss, wanted) if wanted and loss is not None else []
            results.append([o.numpy() for o in outs] + [g.numpy() for g in grads if g is not None])
    for cpu, gpu in zip(*results):
        if cpu.dtype == np.uint8:
            assert np.abs(cpu.astype(int) - gpu.astype(int)).max() <= 1, name
        else:
            np.testing.assert_allclose(gpu, cpu, rtol=max(rtol, 1e-4), atol=1e-5, err_msg=name)


@pytest.mark.gpu
def test_elastic_transform_gpu_matches_cpu():
    from dlgpu.ops.image import _elastic_warp
    x = F(2, 12, 11, 3)
    dx, dy = RNG.normal(size=(2, 2, 12, 11)).astype("float32")
    outs = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            outs.append(_elastic_warp(dops.convert_to_tensor(x), dx, dy, 3.0, 1.3, "bilinear", "mirror", 0.0).numpy())
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-4, atol=1e-5)
