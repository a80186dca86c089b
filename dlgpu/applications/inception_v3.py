"""InceptionV3 (keras.applications.inception_v3): Szegedy et al., "Rethinking the Inception Architecture
for Computer Vision" (CVPR 2016), layer for layer as Keras builds it, so Keras's weight files load (by
layer order: Keras leaves the convolutions unnamed)."""

from __future__ import annotations

from dlgpu import layers
from dlgpu.applications import imagenet_utils
from dlgpu.models import Model

WEIGHTS_PATH = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                "inception_v3_weights_tf_dim_ordering_tf_kernels.h5")
WEIGHTS_PATH_NO_TOP = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                       "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")
WEIGHTS_HASH = "9a0d58056eeedaa3f26cb7ebd46da564"
WEIGHTS_HASH_NO_TOP = "bcbd6486424b2319ff4ef7d526e38f63"


def conv2d_bn(x, filters, num_row, num_col, padding="same", strides=(1, 1), name=None):
    """Convolution (no bias), batch normalization without scale (a ReLU follows), ReLU."""
    bn_name = f"{name}_bn" if name is not None else None
    conv_name = f"{name}_conv" if name is not None else None
    x = layers.Conv2D(filters, (num_row, num_col), strides=strides, padding=padding, use_bias=False, name=conv_name)(x)
    x = layers.BatchNormalization(axis=3, scale=False, name=bn_name)(x)
    return layers.Activation("relu", name=name)(x)


def _avg_pool_branch(x, filters):
    branch_pool = layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same")(x)
    return conv2d_bn(branch_pool, filters, 1, 1)


def _block_35(x, pool_filters, name):
    """The 35x35 module: 1x1, 5x5, double 3x3 and pooled branches."""
    branch1x1 = conv2d_bn(x, 64, 1, 1)
    branch5x5 = conv2d_bn(conv2d_bn(x, 48, 1, 1), 64, 5, 5)
    branch3x3dbl = conv2d_bn(conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3)
    branches = [branch1x1, branch5x5, branch3x3dbl, _avg_pool_branch(x, pool_filters)]
    return layers.Concatenate(axis=3, name=name)(branches)


def _block_17(x, filters, name):
    """The 17x17 module: factorised 7x7 convolutions (1x7 then 7x1)."""
    branch1x1 = conv2d_bn(x, 192, 1, 1)
    branch7x7 = conv2d_bn(conv2d_bn(conv2d_bn(x, filters, 1, 1), filters, 1, 7), 192, 7, 1)
    branch7x7dbl = conv2d_bn(x, filters, 1, 1)
    branch7x7dbl = conv2d_bn(branch7x7dbl, filters, 7, 1)
    branch7x7dbl = conv2d_bn(branch7x7dbl, filters, 1, 7)
    branch7x7dbl = conv2d_bn(branch7x7dbl, filters, 7, 1)
    branch7x7dbl = conv2d_bn(branch7x7dbl, 192, 1, 7)
    return layers.Concatenate(axis=3, name=name)([branch1x1, branch7x7, branch7x7dbl, _avg_pool_branch(x, 192)])


def InceptionV3(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,  # noqa: N802
                classes=1000, classifier_activation="softmax", name="inception_v3"):
    """Instantiate InceptionV3 (default input 299x299x3, at least 75x75; ``input_shape`` only without the top).

    ``weights``: None (random), "imagenet" (Keras's published weights, downloaded once into dlgpu's cache),
    or the path of a weights file.  ``pooling`` ("avg", "max" or None) applies when ``include_top=False``.
    Inputs are expected preprocessed by :func:`preprocess_input` (scaled to [-1, 1]).
    """
    imagenet_utils.check_weights_argument(weights, include_top, classes)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=299, min_size=75,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    img_input, sources = imagenet_utils.model_input(input_tensor, input_shape)
    x = conv2d_bn(img_input, 32, 3, 3, strides=(2, 2), padding="valid")
    x = conv2d_bn(x, 32, 3, 3, padding="valid")
    x = conv2d_bn(x, 64, 3, 3)
    x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = conv2d_bn(x, 80, 1, 1, padding="valid")
    x = conv2d_bn(x, 192, 3, 3, padding="valid")
    x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = _block_35(x, 32, "mixed0")
    x = _block_35(x, 64, "mixed1")
    x = _block_35(x, 64, "mixed2")
    # mixed 3: 35x35 -> 17x17
    branch3x3 = conv2d_bn(x, 384, 3, 3, strides=(2, 2), padding="valid")
    branch3x3dbl = conv2d_bn(conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, strides=(2, 2), padding="valid")
    branch_pool = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = layers.Concatenate(axis=3, name="mixed3")([branch3x3, branch3x3dbl, branch_pool])
    x = _block_17(x, 128, "mixed4")
    x = _block_17(x, 160, "mixed5")
    x = _block_17(x, 160, "mixed6")
    x = _block_17(x, 192, "mixed7")
    # mixed 8: 17x17 -> 8x8
    branch3x3 = conv2d_bn(conv2d_bn(x, 192, 1, 1), 320, 3, 3, strides=(2, 2), padding="valid")
    branch7x7x3 = conv2d_bn(conv2d_bn(conv2d_bn(x, 192, 1, 1), 192, 1, 7), 192, 7, 1)
    branch7x7x3 = conv2d_bn(branch7x7x3, 192, 3, 3, strides=(2, 2), padding="valid")
    branch_pool = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = layers.Concatenate(axis=3, name="mixed8")([branch3x3, branch7x7x3, branch_pool])
    for i in range(2):  # mixed 9, 10: 8x8 with split 1x3 / 3x1 branches
        branch1x1 = conv2d_bn(x, 320, 1, 1)
        branch3x3 = conv2d_bn(x, 384, 1, 1)
        branch3x3 = layers.Concatenate(axis=3, name=f"mixed9_{i}")([conv2d_bn(branch3x3, 384, 1, 3),
                                                                     conv2d_bn(branch3x3, 384, 3, 1)])
        branch3x3dbl = conv2d_bn(conv2d_bn(x, 448, 1, 1), 384, 3, 3)
        branch3x3dbl = layers.Concatenate(axis=3)([conv2d_bn(branch3x3dbl, 384, 1, 3),
                                                   conv2d_bn(branch3x3dbl, 384, 3, 1)])
        x = layers.Concatenate(axis=3, name=f"mixed{9 + i}")([branch1x1, branch3x3, branch3x3dbl,
                                                                _avg_pool_branch(x, 192)])
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


preprocess_input.__doc__ = imagenet_utils.PREPROCESS_INPUT_DOC.format(model="InceptionV3", how=imagenet_utils.TF_DOC)
