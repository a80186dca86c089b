"""ops.image: the batched affine sampler against scipy.ndimage for every fill mode and both interpolations,
resize against torch.nn.functional.interpolate, crop/pad to the aspect ratio by hand, gradients by finite
differences, bad inputs."""

import numpy as np
import pytest

from dlgpu import ops

from helpers import SCIPY_FILL_MODES, check_gradients, scipy_affine_transform

pytest.importorskip("scipy")

# An affine map per image whose source points avoid the x.5 ties where nearest rounding is a convention.
TRANSFORMS = np.array([[0.93, 0.31, 0.77, -0.23, 1.07, -1.33, 0, 0],
                       [1.21, -0.42, -2.17, 0.53, 0.81, 0.94, 0, 0]], np.float32)


def _images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("fill_mode", sorted(SCIPY_FILL_MODES))
@pytest.mark.parametrize("interpolation, order", [("bilinear", 1), ("nearest", 0)])
def test_affine_transform_matches_scipy(fill_mode, interpolation, order):
    x = _images((2, 5, 6, 3))
    out = ops.image.affine_transform(x, TRANSFORMS, interpolation, fill_mode, fill_value=0.5)
    assert out.dtype == "float32" and out.shape == x.shape
    np.testing.assert_allclose(out.numpy(), scipy_affine_transform(x, TRANSFORMS, order, fill_mode, 0.5), atol=2e-6)


def test_affine_transform_single_image_and_3x3_matrix():
    x = _images((5, 6, 2))
    a0, a1, a2, b0, b1, b2 = TRANSFORMS[0, :6]
    matrix = np.array([[a0, a1, a2], [b0, b1, b2], [0, 0, 1]], np.float32)
    out = ops.image.affine_transform(x, matrix, fill_mode="wrap")
    np.testing.assert_allclose(out.numpy(), scipy_affine_transform(x[None], TRANSFORMS[:1], 1, "wrap", 0)[0], atol=2e-6)


@pytest.mark.parametrize("interpolation, fill_mode", [("bilinear", "constant"), ("bilinear", "reflect"),
                                                      ("nearest", "wrap")])
def test_affine_transform_gradient(interpolation, fill_mode):
    check_gradients(lambda x: ops.image.affine_transform(x, TRANSFORMS, interpolation, fill_mode, fill_value=0.3),
                    [_images((2, 4, 5, 2))])


@pytest.mark.parametrize("size", [(3, 4), (14, 5), (7, 20), (1, 1)])
@pytest.mark.parametrize("interpolation, torch_mode", [("bilinear", "bilinear"), ("nearest", "nearest-exact")])
def test_resize_matches_torch(size, interpolation, torch_mode):
    torch = pytest.importorskip("torch")
    x = _images((2, 7, 9, 3))
    kwargs = {"align_corners": False} if torch_mode == "bilinear" else {}
    ref = torch.nn.functional.interpolate(torch.tensor(x).permute(0, 3, 1, 2), size=size, mode=torch_mode, **kwargs)
    out = ops.image.resize(x, size, interpolation)
    np.testing.assert_allclose(out.numpy(), ref.permute(0, 2, 3, 1).numpy(), atol=2e-6)


def test_resize_crop_and_pad_to_aspect_ratio():
    x = _images((2, 6, 10, 1))
    # 6x10 to a square: crop the central 6x6, then the sizes match and nothing is interpolated
    np.testing.assert_array_equal(ops.image.resize(x, (6, 6), crop_to_aspect_ratio=True).numpy(), x[:, :, 2:8])
    # 6x10 to 10x10: pad two rows of fill_value above and below, then resize 10x10 -> 10x10 (no-op)
    padded = ops.image.resize(x, (10, 10), pad_to_aspect_ratio=True, fill_value=-7.0).numpy()
    np.testing.assert_array_equal(padded[:, 2:8], x)
    assert (padded[:, :2] == -7).all() and (padded[:, 8:] == -7).all()
    check_gradients(lambda t: ops.image.resize(t, (4, 7)), [_images((1, 5, 3, 2))])


def test_ops_image_bad_inputs():
    with pytest.raises(ValueError, match="affine_transform: expected images of rank 3.*received shape \\(4, 4\\)"):
        ops.image.affine_transform(np.zeros((4, 4)), TRANSFORMS[0])
    with pytest.raises(ValueError, match="`fill_mode` must be one of"):
        ops.image.affine_transform(np.zeros((1, 4, 4, 1)), TRANSFORMS[0], fill_mode="edge")
    with pytest.raises(ValueError, match="`transform` must have shape.*received shape \\(2, 6\\)"):
        ops.image.affine_transform(np.zeros((2, 4, 4, 1)), np.zeros((2, 6)))
    with pytest.raises(NotImplementedError, match="antialias"):
        ops.image.resize(np.zeros((4, 4, 1)), (2, 2), antialias=True)
    with pytest.raises(NotImplementedError, match="'bicubic'"):
        ops.image.resize(np.zeros((4, 4, 1)), (2, 2), "bicubic")
    with pytest.raises(ValueError, match="data_format"):
        ops.image.resize(np.zeros((1, 4, 4)), (2, 2), data_format="channels_middle")


@pytest.mark.gpu
def test_ops_image_on_gpu_match_cpu():
    import dlgpu
    x = _images((2, 6, 7, 3))
    results = []
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            xt = ops.convert_to_tensor(x)
            with dlgpu.GradientTape() as tape:
                tape.watch(xt)
                outs = [ops.image.affine_transform(xt, TRANSFORMS, interpolation, fill_mode, fill_value=0.5)
                        for interpolation in ("bilinear", "nearest") for fill_mode in sorted(SCIPY_FILL_MODES)]
                outs += [ops.image.resize(xt, (9, 4)), ops.image.resize(xt, (3, 11), "nearest"),
                         ops.image.resize(xt, (5, 5), crop_to_aspect_ratio=True)]
                loss = sum(ops.sum(ops.square(o)) for o in outs)
            results.append([o.numpy() for o in outs] + [tape.gradient(loss, xt).numpy()])
    for on_cpu, on_gpu in zip(*results):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-5, atol=1e-5)
