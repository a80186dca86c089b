"""ResNet50/101/152 (keras.applications.resnet; ResNet v1): He et al., "Deep Residual Learning for Image
Recognition" (CVPR 2016), layer for layer as Keras builds them, so Keras's weight files load by name.
The skeleton and the v2 blocks serve resnet_v2 too (He et al., "Identity Mappings in Deep Residual
Networks", ECCV 2016)."""

from __future__ import annotations

from dlgpu import layers
from dlgpu.applications import imagenet_utils
from dlgpu.models import Model

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
# (with top, without top): Keras's published MD5s
WEIGHTS_HASHES = {
    "resnet50": ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": ("f1aeb4b969a6efcfb50fad2f0c20cfc5", "88cf7a10940856eca736dc7b7e228a21"),
    "resnet152": ("100835be76be38e30d865e96f2aaae62", "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    "resnet50v2": ("3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"),
    "resnet101v2": ("6343647c601c52e1368623803854d971", "c0ed64b8031c3730f411d2eb4eea35b5"),
    "resnet152v2": ("a49b44d1979771252814e80f8ec446f9", "ed17cf2e0169df9d443503ef94b23b33"),
}

_EPS = 1.001e-5  # Keras's; the Caffe-converted weights were fitted with it


def ResNet(stack_fn, preact, use_bias, include_top=True, weights="imagenet", input_tensor=None,  # noqa: N802
           input_shape=None, pooling=None, classes=1000, classifier_activation="softmax", name="resnet",
           weights_name=None):
    """The ResNet skeleton; ``stack_fn`` builds the residual stages.  ``preact=True`` (v2) moves the stem's
    batch normalization after the stages (post_bn), since each v2 block normalizes its own input."""
    imagenet_utils.check_weights_argument(weights, include_top, classes)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    img_input, sources = imagenet_utils.model_input(input_tensor, input_shape)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
    if not preact:
        x = layers.BatchNormalization(axis=3, epsilon=_EPS, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    x = stack_fn(x)
    if preact:
        x = layers.BatchNormalization(axis=3, epsilon=_EPS, name="post_bn")(x)
        x = layers.Activation("relu", name="post_relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = imagenet_utils.pool_or_flat(x, pooling, avg_name="avg_pool", max_name="max_pool")
    model = Model(sources if input_tensor is not None else img_input, x, name=name)
    if weights == "imagenet" and weights_name not in WEIGHTS_HASHES:
        raise ValueError(f"ResNet: no ImageNet weights are published for weights_name={weights_name!r}; "
                         f"known: {sorted(WEIGHTS_HASHES)}.")
    file_name = url = file_hash = None
    if weights == "imagenet":
        suffix = "" if include_top else "_notop"
        file_name = f"{weights_name}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"
        url = BASE_WEIGHTS_PATH + file_name
        file_hash = WEIGHTS_HASHES[weights_name][0 if include_top else 1]
    return imagenet_utils.load_model_weights(model, weights, file_name, url, file_hash)


def residual_block_v1(x, filters, kernel_size=3, stride=1, conv_shortcut=True, name=None):
    """A bottleneck block: 1x1 (stride), kernel_size, 1x1 (4 * filters), plus the shortcut."""
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.Conv2D(filters, kernel_size, padding="same", name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_3_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def stack_residual_blocks_v1(x, filters, blocks, stride1=2, name=None):
    x = residual_block_v1(x, filters, stride=stride1, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = residual_block_v1(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x


def residual_block_v2(x, filters, kernel_size=3, stride=1, conv_shortcut=False, name=None):
    """A pre-activation bottleneck block: BN-ReLU first, then 1x1, kernel_size (stride), 1x1 (4 * filters);
    the stride sits at the end of a stage, where an identity shortcut is subsampled by a 1x1 max pool."""
    preact = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_preact_bn")(x)
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(preact)
    else:
        shortcut = layers.MaxPooling2D(1, strides=stride)(x) if stride > 1 else x
    x = layers.Conv2D(filters, 1, strides=1, use_bias=False, name=f"{name}_1_conv")(preact)
    x = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"{name}_2_pad")(x)
    x = layers.Conv2D(filters, kernel_size, strides=stride, use_bias=False, name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    return layers.Add(name=f"{name}_out")([shortcut, x])


def stack_residual_blocks_v2(x, filters, blocks, stride1=2, name=None):
    x = residual_block_v2(x, filters, conv_shortcut=True, name=f"{name}_block1")
    for i in range(2, blocks):
        x = residual_block_v2(x, filters, name=f"{name}_block{i}")
    return residual_block_v2(x, filters, stride=stride1, name=f"{name}_block{blocks}")


def _stages(blocks):
    def stack_fn(x):
        x = stack_residual_blocks_v1(x, 64, blocks[0], stride1=1, name="conv2")
        x = stack_residual_blocks_v1(x, 128, blocks[1], name="conv3")
        x = stack_residual_blocks_v1(x, 256, blocks[2], name="conv4")
        return stack_residual_blocks_v1(x, 512, blocks[3], name="conv5")
    return stack_fn


def _resnet_v1(blocks, weights_name, include_top, weights, input_tensor, input_shape, pooling, classes,
               classifier_activation, name):
    return ResNet(_stages(blocks), preact=False, use_bias=True, include_top=include_top, weights=weights,
                  input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                  classifier_activation=classifier_activation, name=name, weights_name=weights_name)


_DOC = """Instantiate {model} (default input 224x224x3, at least 32x32; ``input_shape`` only without the top).

    ``weights``: None (random), "imagenet" (Keras's published weights, downloaded once into dlgpu's cache),
    or the path of a weights file.  ``pooling`` ("avg", "max" or None) applies when ``include_top=False``.
    Inputs are expected preprocessed by :func:`preprocess_input` (caffe mode).
    """


def ResNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,  # noqa: N802
             classes=1000, classifier_activation="softmax", name="resnet50"):
    return _resnet_v1((3, 4, 6, 3), "resnet50", include_top, weights, input_tensor, input_shape, pooling, classes,
                      classifier_activation, name)


def ResNet101(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,  # noqa: N802
              classes=1000, classifier_activation="softmax", name="resnet101"):
    return _resnet_v1((3, 4, 23, 3), "resnet101", include_top, weights, input_tensor, input_shape, pooling,
                      classes, classifier_activation, name)


def ResNet152(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,  # noqa: N802
              classes=1000, classifier_activation="softmax", name="resnet152"):
    return _resnet_v1((3, 8, 36, 3), "resnet152", include_top, weights, input_tensor, input_shape, pooling,
                      classes, classifier_activation, name)


ResNet50.__doc__ = _DOC.format(model="ResNet50")
ResNet101.__doc__ = _DOC.format(model="ResNet101")
ResNet152.__doc__ = _DOC.format(model="ResNet152")


def preprocess_input(x, data_format=None):
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


decode_predictions = imagenet_utils.decode_predictions  # the one ImageNet class index


preprocess_input.__doc__ = imagenet_utils.PREPROCESS_INPUT_DOC.format(model="ResNet", how=imagenet_utils.CAFFE_DOC)
