"""EfficientNetV2 B0-B3, S, M and L (keras.applications.efficientnet_v2): Tan & Le, "EfficientNetV2: Smaller
Models and Faster Training" (ICML 2021), layer for layer as Keras builds them, so Keras's weight files
load.  With ``include_preprocessing`` (the default) the model scales its inputs itself: pixels in [0, 255]."""

from __future__ import annotations

import copy
import math

from dlgpu import layers
from dlgpu.applications import imagenet_utils
from dlgpu.applications.efficientnet import CONV_KERNEL_INITIALIZER, DENSE_KERNEL_INITIALIZER, squeeze_excite
from dlgpu.models import Model

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/efficientnet_v2/"
# (with top, without top): Keras's published MD5s
WEIGHTS_HASHES = {
    "b0": ("21ecbf6da12460d5c40bb2f29ceb2188", "893217f2bb855e2983157299931e43ff"),
    "b1": ("069f0534ff22adf035c89e2d9547a9dc", "0e80663031ca32d657f9caa404b6ec37"),
    "b2": ("424e49f28180edbde1e94797771950a7", "1dfe2e7a5d45b6632553a8961ea609eb"),
    "b3": ("1f1fc43bd98a6e4fd8fdfd551e02c7a0", "f6abf7b5849ac99a89b50dd3fd532856"),
    "-s": ("e1d88a8495beba45748fedd0cecbe016", "af0682fb74e8c54910f2d4393339c070"),
    "-m": ("a3bf6aa3276309f4fc6a34aa114c95cd", "1b8dc055df72dde80d614482840fe342"),
    "-l": ("27e6d408b53c7ebc868fefa357689935", "b0b66b5c863aef5b46e8608fe1711615"),
}


def _stage(conv_type, kernel_size, num_repeat, input_filters, output_filters, expand_ratio, se_ratio, strides):
    return {"kernel_size": kernel_size, "num_repeat": num_repeat, "input_filters": input_filters,
            "output_filters": output_filters, "expand_ratio": expand_ratio, "se_ratio": se_ratio,
            "strides": strides, "conv_type": conv_type}


# conv_type 1: fused MBConv (one full convolution instead of expansion + depthwise), 0: MBConv
_B_SERIES = [_stage(1, 3, 1, 32, 16, 1, 0, 1), _stage(1, 3, 2, 16, 32, 4, 0, 2), _stage(1, 3, 2, 32, 48, 4, 0, 2),
             _stage(0, 3, 3, 48, 96, 4, 0.25, 2), _stage(0, 3, 5, 96, 112, 6, 0.25, 1),
             _stage(0, 3, 8, 112, 192, 6, 0.25, 2)]
DEFAULT_BLOCKS_ARGS = {
    "efficientnetv2-s": [_stage(1, 3, 2, 24, 24, 1, 0.0, 1), _stage(1, 3, 4, 24, 48, 4, 0.0, 2),
                         _stage(1, 3, 4, 48, 64, 4, 0, 2), _stage(0, 3, 6, 64, 128, 4, 0.25, 2),
                         _stage(0, 3, 9, 128, 160, 6, 0.25, 1), _stage(0, 3, 15, 160, 256, 6, 0.25, 2)],
    "efficientnetv2-m": [_stage(1, 3, 3, 24, 24, 1, 0, 1), _stage(1, 3, 5, 24, 48, 4, 0, 2),
                         _stage(1, 3, 5, 48, 80, 4, 0, 2), _stage(0, 3, 7, 80, 160, 4, 0.25, 2),
                         _stage(0, 3, 14, 160, 176, 6, 0.25, 1), _stage(0, 3, 18, 176, 304, 6, 0.25, 2),
                         _stage(0, 3, 5, 304, 512, 6, 0.25, 1)],
    "efficientnetv2-l": [_stage(1, 3, 4, 32, 32, 1, 0, 1), _stage(1, 3, 7, 32, 64, 4, 0, 2),
                         _stage(1, 3, 7, 64, 96, 4, 0, 2), _stage(0, 3, 10, 96, 192, 4, 0.25, 2),
                         _stage(0, 3, 19, 192, 224, 6, 0.25, 1), _stage(0, 3, 25, 224, 384, 6, 0.25, 2),
                         _stage(0, 3, 7, 384, 640, 6, 0.25, 1)],
    **{f"efficientnetv2-b{i}": _B_SERIES for i in range(4)},
}


def round_filters(filters, width_coefficient, min_depth, depth_divisor):
    filters *= width_coefficient
    minimum_depth = min_depth or depth_divisor
    return int(max(minimum_depth, int(filters + depth_divisor / 2) // depth_divisor * depth_divisor))


def round_repeats(repeats, depth_coefficient):
    return int(math.ceil(depth_coefficient * repeats))


def _residual(x, inputs, strides, input_filters, output_filters, survival_probability, name):
    if strides == 1 and input_filters == output_filters:
        # Keras's name: the value is the rate at which the residual branch is dropped, per sample
        if survival_probability:
            x = layers.Dropout(survival_probability, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.Add(name=f"{name}add")([x, inputs])
    return x


def MBConvBlock(input_filters, output_filters, expand_ratio=1, kernel_size=3, strides=1, se_ratio=0.0,  # noqa: N802
                bn_momentum=0.9, activation="swish", survival_probability=0.8, name=None):
    """1x1 expansion, depthwise convolution, squeeze and excitation, 1x1 projection (a function of the input)."""

    def apply(inputs):
        filters = input_filters * expand_ratio
        x = inputs
        if expand_ratio != 1:
            x = layers.Conv2D(filters=filters, kernel_size=1, strides=1, kernel_initializer=CONV_KERNEL_INITIALIZER,
                              padding="same", use_bias=False, name=f"{name}expand_conv")(x)
            x = layers.BatchNormalization(axis=3, momentum=bn_momentum, name=f"{name}expand_bn")(x)
            x = layers.Activation(activation, name=f"{name}expand_activation")(x)
        x = layers.DepthwiseConv2D(kernel_size=kernel_size, strides=strides, padding="same", use_bias=False,
                                   depthwise_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}dwconv2")(x)
        x = layers.BatchNormalization(axis=3, momentum=bn_momentum, name=f"{name}bn")(x)
        x = layers.Activation(activation, name=f"{name}activation")(x)
        if 0 < se_ratio <= 1:
            x = squeeze_excite(x, filters, max(1, int(input_filters * se_ratio)), activation, name)
        x = layers.Conv2D(filters=output_filters, kernel_size=1, strides=1, kernel_initializer=CONV_KERNEL_INITIALIZER,
                          padding="same", use_bias=False, name=f"{name}project_conv")(x)
        x = layers.BatchNormalization(axis=3, momentum=bn_momentum, name=f"{name}project_bn")(x)
        return _residual(x, inputs, strides, input_filters, output_filters, survival_probability, name)
    return apply


def FusedMBConvBlock(input_filters, output_filters, expand_ratio=1, kernel_size=3, strides=1,  # noqa: N802
                     se_ratio=0.0, bn_momentum=0.9, activation="swish", survival_probability=0.8, name=None):
    """MBConv with the expansion and depthwise convolutions fused into one ``kernel_size`` convolution."""

    def apply(inputs):
        filters = input_filters * expand_ratio
        x = inputs
        if expand_ratio != 1:
            x = layers.Conv2D(filters, kernel_size=kernel_size, strides=strides, padding="same", use_bias=False,
                              kernel_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}expand_conv")(x)
            x = layers.BatchNormalization(axis=3, momentum=bn_momentum, name=f"{name}expand_bn")(x)
            x = layers.Activation(activation=activation, name=f"{name}expand_activation")(x)
        if 0 < se_ratio <= 1:
            x = squeeze_excite(x, filters, max(1, int(input_filters * se_ratio)), activation, name)
        x = layers.Conv2D(output_filters, kernel_size=1 if expand_ratio != 1 else kernel_size,
                          strides=1 if expand_ratio != 1 else strides, kernel_initializer=CONV_KERNEL_INITIALIZER,
                          padding="same", use_bias=False, name=f"{name}project_conv")(x)
        x = layers.BatchNormalization(axis=3, momentum=bn_momentum, name=f"{name}project_bn")(x)
        if expand_ratio == 1:
            x = layers.Activation(activation=activation, name=f"{name}project_activation")(x)
        return _residual(x, inputs, strides, input_filters, output_filters, survival_probability, name)
    return apply


def EfficientNetV2(width_coefficient, depth_coefficient, default_size, dropout_rate=0.2,  # noqa: N802
                   drop_connect_rate=0.2, depth_divisor=8, min_depth=8, bn_momentum=0.9, activation="swish",
                   blocks_args="default", name="efficientnetv2", include_top=True, weights="imagenet",
                   input_tensor=None, input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
                   include_preprocessing=True, weights_name=None, variant=None):
    """The EfficientNetV2 family.  ``variant`` ("efficientnetv2-b0" ...) picks the default ``blocks_args``,
    the preprocessing and the weight file; Keras reads them from ``name``, which dlgpu leaves free."""
    variant = variant or name
    if blocks_args == "default":
        if variant not in DEFAULT_BLOCKS_ARGS:
            raise ValueError(f"EfficientNetV2: no default blocks_args for {variant!r}; known: "
                             f"{sorted(DEFAULT_BLOCKS_ARGS)}. Pass blocks_args or variant.")
        blocks_args = DEFAULT_BLOCKS_ARGS[variant]
    imagenet_utils.check_weights_argument(weights, include_top, classes)
    if weights == "imagenet" and weights_name not in WEIGHTS_HASHES:
        raise ValueError(f"EfficientNetV2: no ImageNet weights are published for weights_name={weights_name!r}; "
                         f"known: {sorted(WEIGHTS_HASHES)}.")
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=default_size, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    img_input, sources = imagenet_utils.model_input(input_tensor, input_shape)
    x = img_input
    if include_preprocessing:
        # the B models were trained on ImageNet-normalised inputs, S/M/L on [-1, 1]
        if variant.split("-")[-1].startswith("b") and input_shape[2] == 3:
            x = layers.Rescaling(scale=1.0 / 255)(x)
            x = layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.229**2, 0.224**2, 0.225**2],
                                     axis=3)(x)
        else:
            x = layers.Rescaling(scale=1.0 / 128.0, offset=-1)(x)

    def filters_of(n):
        return round_filters(n, width_coefficient, min_depth, depth_divisor)

    x = layers.Conv2D(filters=filters_of(blocks_args[0]["input_filters"]), kernel_size=3, strides=2,
                      kernel_initializer=CONV_KERNEL_INITIALIZER, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(axis=3, momentum=bn_momentum, name="stem_bn")(x)
    x = layers.Activation(activation, name="stem_activation")(x)
    blocks_args = copy.deepcopy(blocks_args)
    b = 0
    blocks = float(sum(args["num_repeat"] for args in blocks_args))
    for i, args in enumerate(blocks_args):
        if args["num_repeat"] <= 0:
            raise ValueError("The number of repeats in `EfficientNetV2` must be > 0. Received: "
                             f"num_repeat={args['num_repeat']}")
        args["input_filters"] = filters_of(args["input_filters"])
        args["output_filters"] = filters_of(args["output_filters"])
        block = {0: MBConvBlock, 1: FusedMBConvBlock}[args.pop("conv_type")]
        for j in range(round_repeats(args.pop("num_repeat"), depth_coefficient)):
            if j > 0:
                args["strides"] = 1
                args["input_filters"] = args["output_filters"]
            rate = drop_connect_rate * b / blocks
            x = block(activation=activation, bn_momentum=bn_momentum, survival_probability=rate,
                      name=f"block{i + 1}{chr(j + 97)}_", **args)(x)
            b += 1
    x = layers.Conv2D(filters=filters_of(1280), kernel_size=1, strides=1, kernel_initializer=CONV_KERNEL_INITIALIZER,
                      padding="same", use_bias=False, name="top_conv")(x)
    x = layers.BatchNormalization(axis=3, momentum=bn_momentum, name="top_bn")(x)
    x = layers.Activation(activation=activation, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, kernel_initializer=DENSE_KERNEL_INITIALIZER,
                         bias_initializer="zeros", name="predictions")(x)
    else:
        x = imagenet_utils.pool_or_flat(x, pooling, avg_name="avg_pool", max_name="max_pool")
    model = Model(sources if input_tensor is not None else img_input, x, name=name)
    file_name = url = file_hash = None
    if weights == "imagenet":
        file_name = variant + (".h5" if include_top else "_notop.h5")
        url = BASE_WEIGHTS_PATH + file_name
        file_hash = WEIGHTS_HASHES[weights_name][0 if include_top else 1]
    return imagenet_utils.load_model_weights(model, weights, file_name, url, file_hash)


_DOC = """Instantiate {model} (default input {size}x{size}x3, at least 32x32; ``input_shape`` only without the top).

    With ``include_preprocessing=True`` the model takes float pixels in [0, 255] (:func:`preprocess_input`
    passes them through); without, inputs in [-1, 1].  ``weights``: None (random), "imagenet" (Keras's
    published weights, downloaded once into dlgpu's cache), or the path of a weights file.  ``pooling``
    ("avg", "max" or None) applies when ``include_top=False``.
    """

# key: (width, depth, default size, weights name)
_VARIANTS = {"b0": (1.0, 1.0, 224, "b0"), "b1": (1.0, 1.1, 240, "b1"), "b2": (1.1, 1.2, 260, "b2"),
             "b3": (1.2, 1.4, 300, "b3"), "s": (1.0, 1.0, 384, "-s"), "m": (1.0, 1.0, 480, "-m"),
             "l": (1.0, 1.0, 480, "-l")}


def _variant(key):
    width, depth, size, weights_name = _VARIANTS[key]

    def build(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
              classes=1000, classifier_activation="softmax", include_preprocessing=True,
              name=f"efficientnetv2-{key}"):
        return EfficientNetV2(width_coefficient=width, depth_coefficient=depth, default_size=size, name=name,
                              include_top=include_top, weights=weights, input_tensor=input_tensor,
                              input_shape=input_shape, pooling=pooling, classes=classes,
                              classifier_activation=classifier_activation, include_preprocessing=include_preprocessing,
                              weights_name=weights_name, variant=f"efficientnetv2-{key}")
    build.__name__ = build.__qualname__ = f"EfficientNetV2{key.upper()}"
    build.__doc__ = _DOC.format(model=build.__name__, size=size)
    return build


EfficientNetV2B0 = _variant("b0")
EfficientNetV2B1 = _variant("b1")
EfficientNetV2B2 = _variant("b2")
EfficientNetV2B3 = _variant("b3")
EfficientNetV2S = _variant("s")
EfficientNetV2M = _variant("m")
EfficientNetV2L = _variant("l")


def preprocess_input(x, data_format=None):
    """A pass-through, as in Keras: EfficientNetV2 scales its inputs itself (``include_preprocessing``)."""
    return x


decode_predictions = imagenet_utils.decode_predictions  # the one ImageNet class index
