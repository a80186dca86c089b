"""What the ImageNet models share (keras.applications.imagenet_utils): input preprocessing, decoding
predictions into class names, the input-shape rules, and the helpers their builders use."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from dlgpu import activations
from dlgpu.applications._weights import get_file
from dlgpu.layers import register
from dlgpu.layers.base import InputLayer, KerasTensor, Layer, ordered_nodes

CLASS_INDEX = None
CLASS_INDEX_PATH = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
CLASS_INDEX_HASH = "c2c37ea517e94d9795004a39431a14cb"

# ImageNet's per-channel statistics: caffe's in BGR order on the 0-255 scale, torch's in RGB on 0-1.
_CAFFE_MEAN = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


def preprocess_input(x, data_format=None, mode="caffe"):
    """Preprocess a batch of images (3D or 4D, 3 colour channels, values in [0, 255]) for an ImageNet model.

    ``mode``: "caffe" (RGB to BGR, then subtract the ImageNet mean per channel, no scaling), "tf" (scale to
    [-1, 1]) or "torch" (scale to [0, 1], then normalize each channel by ImageNet's mean and std).
    A float numpy array is modified in place, as in Keras (pass ``np.copy(x)`` to keep it); integer arrays
    become float32.  Eager tensors give tensors; a symbolic tensor (inside a functional model) gives the
    output of a layer that does the same.
    """
    if mode not in {"caffe", "tf", "torch"}:
        raise ValueError(f"Expected mode to be one of `caffe`, `tf` or `torch`. Received: mode={mode}")
    if data_format is None:
        data_format = "channels_last"
    elif data_format not in {"channels_first", "channels_last"}:
        raise ValueError("Expected data_format to be one of `channels_first` or `channels_last`. "
                         f"Received: data_format={data_format}")
    if isinstance(x, KerasTensor):
        return _preprocess_symbolic(x, data_format, mode)
    if isinstance(x, np.ndarray) or not hasattr(x, "shape"):
        x = np.asarray(x)
        if not issubclass(x.dtype.type, np.floating):
            x = x.astype("float32")
        return _preprocess_array(x, data_format, mode)
    return _preprocess_tensor(x, data_format, mode)


def _channel_axis(ndim, data_format):
    if data_format == "channels_last":
        return ndim - 1
    return 0 if ndim == 3 else 1


def _preprocess_array(x, data_format, mode):
    """Keras's numpy path: in place where the dtype allows."""
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x
    axis = _channel_axis(x.ndim, data_format)
    index = [slice(None)] * x.ndim
    if mode == "torch":
        x /= 255.0
        mean, std = _TORCH_MEAN, _TORCH_STD
    else:
        index[axis] = slice(None, None, -1)
        x = x[tuple(index)]  # RGB -> BGR, a view: the in-place updates below still reach the caller's array
        mean, std = _CAFFE_MEAN, None
    for c in range(3):
        index[axis] = c
        x[tuple(index)] -= mean[c]
        if std is not None:
            x[tuple(index)] /= std[c]
    return x


def _broadcast_shape(ndim, data_format):
    shape = [1] * ndim
    shape[_channel_axis(ndim, data_format)] = 3
    return shape


def _preprocess_tensor(x, data_format, mode):
    """Tensors are not changed in place: the result is a new tensor (as with every backend but numpy in Keras)."""
    from dlgpu import ops
    if not np.issubdtype(np.dtype(x.dtype), np.floating):
        x = ops.cast(x, "float32")
    if mode == "tf":
        return x / 127.5 - 1.0
    ndim = len(x.shape)
    shape = _broadcast_shape(ndim, data_format)
    dtype = np.dtype(x.dtype)
    if mode == "torch":
        x = x / 255.0
        mean, std = _TORCH_MEAN, _TORCH_STD
    else:
        x = ops.flip(x, axis=_channel_axis(ndim, data_format))
        mean, std = _CAFFE_MEAN, None
    x = x - np.asarray(mean, dtype).reshape(shape)
    if std is not None:
        x = x / np.asarray(std, dtype).reshape(shape)
    return x


@register
class ImageNetPreprocessing(Layer):
    """``preprocess_input`` as a layer, so that a model calling it on a symbolic tensor saves and loads
    (Keras records the ops; dlgpu saves no Python code, so a Lambda would not do)."""

    def __init__(self, mode="caffe", data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        if mode not in {"caffe", "torch"}:
            raise ValueError(f"ImageNetPreprocessing: mode must be 'caffe' or 'torch' ('tf' is a Rescaling); "
                             f"received mode={mode!r}")
        self.mode, self.data_format = mode, data_format

    def call(self, inputs):
        return _preprocess_tensor(inputs, self.data_format, self.mode)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "data_format": self.data_format}


def _preprocess_symbolic(x, data_format, mode):
    from dlgpu import layers
    if mode == "tf":
        return layers.Rescaling(1.0 / 127.5, offset=-1.0)(x)
    return ImageNetPreprocessing(mode=mode, data_format=data_format)(x)


def decode_predictions(preds, top=5):
    """Decode a batch of ImageNet predictions (shape ``(samples, 1000)``) into lists of
    ``(class_name, class_description, score)`` tuples, best first, ``top`` per sample.

    Reads Keras's ``imagenet_class_index.json``, downloaded once into dlgpu's cache (``<cache>/models``).
    """
    global CLASS_INDEX
    preds = _to_numpy(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError("`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape "
                         f"(samples, 1000)). Received array with shape: {preds.shape}")
    if CLASS_INDEX is None:
        path = get_file("imagenet_class_index.json", CLASS_INDEX_PATH, file_hash=CLASS_INDEX_HASH,
                        what="the ImageNet class index of decode_predictions")
        with open(path, encoding="utf-8") as f:
            CLASS_INDEX = json.load(f)
    results = []
    for pred in preds:
        top_indices = pred.argsort()[-top:][::-1]
        result = [tuple(CLASS_INDEX[str(i)]) + (pred[i],) for i in top_indices]
        result.sort(key=lambda r: r[2], reverse=True)
        results.append(result)
    return results


def _to_numpy(x):
    from dlgpu.backend.device import to_numpy
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(to_numpy(x))
    except (TypeError, AttributeError):
        return np.asarray(x)


def obtain_input_shape(input_shape, default_size, min_size, data_format, require_flatten, weights=None):
    """The model's input shape (without batch) from the user's ``input_shape``, checked as Keras does."""
    if input_shape is not None:
        input_shape = tuple(input_shape)
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        if data_format == "channels_first":
            if input_shape[0] not in {1, 3}:
                warnings.warn("This model usually expects 1 or 3 input channels. However, it was passed an "
                              f"input_shape with {input_shape[0]} input channels.", stacklevel=3)
            default_shape = (input_shape[0], default_size, default_size)
        else:
            if input_shape[-1] not in {1, 3}:
                warnings.warn("This model usually expects 1 or 3 input channels. However, it was passed an "
                              f"input_shape with {input_shape[-1]} input channels.", stacklevel=3)
            default_shape = (default_size, default_size, input_shape[-1])
    else:
        default_shape = (3, default_size, default_size) if data_format == "channels_first" else (
            default_size, default_size, 3)
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and input_shape != default_shape:
            raise ValueError("When setting `include_top=True` and loading `imagenet` weights, `input_shape` should "
                             f"be {default_shape}.  Received: input_shape={input_shape}")
        return default_shape
    if input_shape:
        if len(input_shape) != 3:
            raise ValueError(f"`input_shape` must be a tuple of three integers. Received: input_shape={input_shape}")
        channels, rows, cols = ((input_shape[0],) + input_shape[1:] if data_format == "channels_first"
                                else (input_shape[-1],) + input_shape[:2])
        if channels != 3 and weights == "imagenet":
            raise ValueError(f"The input must have 3 channels; Received `input_shape={input_shape}`")
        if (rows is not None and rows < min_size) or (cols is not None and cols < min_size):
            raise ValueError(f"Input size must be at least {min_size}x{min_size}; Received: input_shape={input_shape}")
    else:
        if require_flatten:
            input_shape = default_shape
        else:
            input_shape = (3, None, None) if data_format == "channels_first" else (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError("If `include_top` is True, you should specify a static `input_shape`. "
                         f"Received: input_shape={input_shape}")
    return input_shape


def correct_pad(inputs, kernel_size):
    """Zero-padding ((top, bottom), (left, right)) before a stride-2 'valid' convolution, as TF's 'same' pads."""
    input_size = inputs.shape[1:3]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    adjust = (1, 1) if input_size[0] is None else (1 - input_size[0] % 2, 1 - input_size[1] % 2)
    correct = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


def validate_activation(classifier_activation, weights):
    """Pretrained weights were trained with a softmax top: only softmax or None (logits) may replace it."""
    if weights is None:
        return
    fn = activations.get(classifier_activation)
    if fn not in {activations.get("softmax"), activations.get(None)}:
        raise ValueError("Only `None` and `softmax` activations are allowed for the `classifier_activation` "
                         "argument when using pretrained weights, with `include_top=True`; Received: "
                         f"classifier_activation={classifier_activation}")


def check_weights_argument(weights, include_top, classes):
    """Keras's checks of ``weights`` and ``classes``, shared by every application."""
    if not (weights in {"imagenet", None} or (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights))):
        raise ValueError("The `weights` argument should be either `None` (random initialization), 'imagenet' "
                         "(pre-training on ImageNet), or the path to the weights file to be loaded.  "
                         f"Received: weights={weights}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError("If using `weights='imagenet'` with `include_top=True`, `classes` should be 1000.  "
                         f"Received classes={classes}")


def model_input(input_tensor, input_shape):
    """(the tensor the network starts from, the model's inputs): a fresh Input, or the user's input_tensor
    whose source Inputs become the model's inputs (Keras's ``get_source_inputs``)."""
    from dlgpu.layers import Input
    if input_tensor is None:
        return Input(shape=input_shape), None
    if not isinstance(input_tensor, KerasTensor):
        raise ValueError("`input_tensor` must be a symbolic tensor (dlgpu.Input(...) or a layer's output on one); "
                         f"received {type(input_tensor).__name__}. dlgpu has no Input(tensor=...).")
    sources = [node.outputs for node in ordered_nodes([input_tensor]) if isinstance(node.layer, InputLayer)]
    return input_tensor, sources if len(sources) != 1 else sources[0]


def pool_or_flat(x, pooling, avg_name=None, max_name=None):
    """The feature-extractor end shared by the models: global average or max pooling, or the feature map."""
    from dlgpu import layers
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=avg_name)(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=max_name)(x)
    return x


def load_model_weights(model, weights, file_name=None, url=None, file_hash=None):
    """Load ``weights``: "imagenet" fetches Keras's published file; a path loads that file."""
    from dlgpu.applications._weights import load_weights
    if weights == "imagenet":
        path = get_file(file_name, url, file_hash=file_hash, what=f"the ImageNet weights of {model.name}")
        load_weights(model, path)
    elif weights is not None:
        load_weights(model, weights)
    return model


PREPROCESS_INPUT_DOC = """Preprocesses a batch of images (3D or 4D, 3 colour channels, values in [0, 255]) for {model}.

    {how}  A float numpy array is modified in place, as in Keras (pass ``np.copy(x)`` to keep it);
    integer arrays become float32.  ``data_format``: None or "channels_last" (dlgpu's layout), or
    "channels_first".  A symbolic tensor gives the output of a layer doing the same, so the call can sit
    inside a functional model.
    """
CAFFE_DOC = "Converts RGB to BGR, then zero-centers each channel with respect to ImageNet, without scaling."
TF_DOC = "Scales pixels to [-1, 1] (x / 127.5 - 1)."
TORCH_DOC = "Scales pixels to [0, 1], then normalizes each channel with ImageNet's mean and standard deviation."
