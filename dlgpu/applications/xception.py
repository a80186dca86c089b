"""Xception (keras.applications.xception): Chollet, "Xception: Deep Learning with Depthwise Separable
Convolutions" (CVPR 2017), layer for layer as Keras builds it, so Keras's weight files load (by layer
order: Keras leaves the shortcut convolutions unnamed)."""

from __future__ import annotations

from dlgpu import layers
from dlgpu.applications import imagenet_utils
from dlgpu.models import Model

WEIGHTS_PATH = ("https://storage.googleapis.com/tensorflow/keras-applications/xception/"
                "xception_weights_tf_dim_ordering_tf_kernels.h5")
WEIGHTS_PATH_NO_TOP = ("https://storage.googleapis.com/tensorflow/keras-applications/xception/"
                       "xception_weights_tf_dim_ordering_tf_kernels_notop.h5")
WEIGHTS_HASH = "0a58e3b7378bc2990ea3b43d5981f1f6"
WEIGHTS_HASH_NO_TOP = "b0042744bf5b25fce3cb969f33bebb97"


def _sepconv_bn(x, filters, name, relu_first=True, relu_name=None):
    if relu_first:
        x = layers.Activation("relu", name=relu_name or f"{name}_act")(x)
    x = layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False, name=name)(x)
    return layers.BatchNormalization(axis=-1, name=f"{name}_bn")(x)


def _downsampling_block(x, filters, block, relu_first=True):
    """Two separable convolutions and a stride-2 max pool, plus a strided 1x1 convolution shortcut."""
    residual = layers.Conv2D(filters[1], (1, 1), strides=(2, 2), padding="same", use_bias=False)(x)
    residual = layers.BatchNormalization(axis=-1)(residual)
    x = _sepconv_bn(x, filters[0], f"block{block}_sepconv1", relu_first=relu_first)
    # Keras names block 2's only activation "sepconv2_act" (it has no sepconv1_act)
    x = _sepconv_bn(x, filters[1], f"block{block}_sepconv2")
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"block{block}_pool")(x)
    return layers.Add()([x, residual])


def Xception(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,  # noqa: N802
             classes=1000, classifier_activation="softmax", name="xception"):
    """Instantiate Xception (default input 299x299x3, at least 71x71; ``input_shape`` only without the top).

    ``weights``: None (random), "imagenet" (Keras's published weights, downloaded once into dlgpu's cache),
    or the path of a weights file.  ``pooling`` ("avg", "max" or None) applies when ``include_top=False``.
    Inputs are expected preprocessed by :func:`preprocess_input` (scaled to [-1, 1]).
    """
    imagenet_utils.check_weights_argument(weights, include_top, classes)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=299, min_size=71,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    img_input, sources = imagenet_utils.model_input(input_tensor, input_shape)
    x = layers.Conv2D(32, (3, 3), strides=(2, 2), use_bias=False, name="block1_conv1")(img_input)
    x = layers.BatchNormalization(axis=-1, name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(64, (3, 3), use_bias=False, name="block1_conv2")(x)
    x = layers.BatchNormalization(axis=-1, name="block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)
    x = _downsampling_block(x, (128, 128), 2, relu_first=False)
    x = _downsampling_block(x, (256, 256), 3)
    x = _downsampling_block(x, (728, 728), 4)
    for i in range(8):  # the middle flow
        residual = x
        for k in (1, 2, 3):
            x = _sepconv_bn(x, 728, f"block{i + 5}_sepconv{k}")
        x = layers.Add()([x, residual])
    x = _downsampling_block(x, (728, 1024), 13)
    x = _sepconv_bn(x, 1536, "block14_sepconv1", relu_first=False)
    x = layers.Activation("relu", name="block14_sepconv1_act")(x)
    x = _sepconv_bn(x, 2048, "block14_sepconv2", relu_first=False)
    x = layers.Activation("relu", name="block14_sepconv2_act")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = imagenet_utils.pool_or_flat(x, pooling)
    model = Model(sources if input_tensor is not None else img_input, x, name=name)
    url, file_hash = (WEIGHTS_PATH, WEIGHTS_HASH) if include_top else (WEIGHTS_PATH_NO_TOP, WEIGHTS_HASH_NO_TOP)
    return imagenet_utils.load_model_weights(model, weights, url.rsplit("/", 1)[1], url, file_hash)


def preprocess_input(x, data_format=None):
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


decode_predictions = imagenet_utils.decode_predictions  # the one ImageNet class index


preprocess_input.__doc__ = imagenet_utils.PREPROCESS_INPUT_DOC.format(model="Xception", how=imagenet_utils.TF_DOC)
