"""keras.utils.load_img, img_to_array, array_to_img, save_img: images through Pillow, an optional
dependency (``pip install 'dlgpu[images]'``)."""

from __future__ import annotations

import io
import pathlib
import warnings

import numpy as np


def pil_image(what):
    """PIL.Image, or an ImportError saying how to install it."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(f"{what} needs Pillow, which is not installed: pip install 'dlgpu[images]' "
                          f"(or pip install pillow)") from error
    return Image


def _resampling(Image):
    resampling = getattr(Image, "Resampling", Image)
    return {"nearest": resampling.NEAREST, "bilinear": resampling.BILINEAR, "bicubic": resampling.BICUBIC,
            "hamming": resampling.HAMMING, "box": resampling.BOX, "lanczos": resampling.LANCZOS}


def _check_data_format(what, data_format):
    if data_format not in (None, "channels_last", "channels_first"):
        raise ValueError(f"{what}: `data_format` must be 'channels_last', 'channels_first' or None; received "
                         f"data_format={data_format!r}")
    return data_format or "channels_last"


def open_image(path, what):
    Image = pil_image(what)
    if isinstance(path, io.BytesIO):
        return Image.open(path)
    if isinstance(path, (pathlib.Path, bytes, str)):
        # Read the bytes first so that the file is closed at once (Pillow opens lazily).
        with open(path, "rb") as f:
            return Image.open(io.BytesIO(f.read()))
    raise TypeError(f"{what}: `path` must be a path (str, bytes, pathlib.Path) or an io.BytesIO; received "
                    f"{type(path).__name__}")


def convert_color(img, color_mode, what):
    if color_mode == "grayscale":
        # 16- and 32-bit grayscale are kept as they are, as Keras keeps them.
        return img if img.mode in ("L", "I;16", "I") else img.convert("L")
    if color_mode == "rgba":
        return img if img.mode == "RGBA" else img.convert("RGBA")
    if color_mode == "rgb":
        return img if img.mode == "RGB" else img.convert("RGB")
    raise ValueError(f"{what}: `color_mode` must be 'grayscale', 'rgb' or 'rgba'; received color_mode={color_mode!r}")


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False):
    """Load an image file into a PIL Image (keras.utils.load_img), converted to ``color_mode`` and, with
    ``target_size=(height, width)``, resized by Pillow with ``interpolation`` ('nearest', 'bilinear',
    'bicubic', 'hamming', 'box', 'lanczos'); ``keep_aspect_ratio`` crops the centre to the target's aspect
    ratio first."""
    what = "load_img"
    Image = pil_image(what)
    if target_size is not None and (len(target_size) != 2 or
                                    any(not isinstance(s, (int, np.integer)) or s < 1 for s in target_size)):
        raise ValueError(f"{what}: `target_size` must be None or (height, width), two positive integers; received "
                         f"target_size={target_size!r}")
    methods = _resampling(Image)
    if interpolation not in methods:
        raise ValueError(f"{what}: `interpolation` must be one of {', '.join(methods)}; received "
                         f"interpolation={interpolation!r}")
    img = convert_color(open_image(path, what), color_mode, what)
    if target_size is not None:
        size = (int(target_size[1]), int(target_size[0]))  # Pillow's (width, height)
        if img.size != size:
            box = None
            if keep_aspect_ratio:
                width, height = img.size
                crop_h = min(height, (width * size[1]) // size[0])
                crop_w = min(width, (height * size[0]) // size[1])
                top, left = (height - crop_h) // 2, (width - crop_w) // 2
                box = (left, top, left + crop_w, top + crop_h)
            img = img.resize(size, methods[interpolation], box=box)
    return img


def img_to_array(img, data_format=None, dtype=None):
    """A PIL Image as a (height, width, channels) float32 array (channels first with
    data_format='channels_first'); grayscale images get a channel axis of 1."""
    what = "img_to_array"
    data_format = _check_data_format(what, data_format)
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 2:
        x = x[None] if data_format == "channels_first" else x[:, :, None]
    elif x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    else:
        raise ValueError(f"{what}: unsupported image shape {x.shape}; expected (height, width) or "
                         f"(height, width, channels)")
    return x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A rank-3 array as a PIL Image (keras.utils.array_to_img): 1, 3 or 4 channels (L, RGB, RGBA).  With
    ``scale`` the values are stretched to [0, 255] (min to 0, max to 255) first."""
    what = "array_to_img"
    Image = pil_image(what)
    data_format = _check_data_format(what, data_format)
    x = np.array(x, dtype=dtype or "float32")  # a copy: scaling below writes in place
    if x.ndim != 3:
        raise ValueError(f"{what}: expected one image of rank 3; received an array of shape {x.shape}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        top = np.max(x)
        if top != 0:
            x /= top
        x *= 255
    channels = x.shape[2]
    if channels == 4:
        return Image.fromarray(x.astype(np.uint8), "RGBA")
    if channels == 3:
        return Image.fromarray(x.astype(np.uint8), "RGB")
    if channels == 1:
        if np.max(x) > 255:  # 32-bit integer grayscale, Pillow's mode "I"
            return Image.fromarray(x[:, :, 0].astype(np.int32), "I")
        return Image.fromarray(x[:, :, 0].astype(np.uint8), "L")
    raise ValueError(f"{what}: expected 1, 3 or 4 channels; received an image of shape {x.shape}")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Save an image array to ``path`` (a path or a file object; then pass ``file_format``) with Pillow;
    ``kwargs`` go to PIL.Image.save."""
    if file_format is not None and file_format.lower() == "jpg":
        file_format = "jpeg"
    img = array_to_img(x, data_format=data_format, scale=scale)
    jpeg = (file_format or "").lower() == "jpeg" or (
        file_format is None and isinstance(path, (str, pathlib.Path)) and
        str(path).lower().endswith((".jpg", ".jpeg")))
    if img.mode == "RGBA" and jpeg:
        warnings.warn("save_img: JPEG does not support RGBA images; converting to RGB.", stacklevel=2)
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)
