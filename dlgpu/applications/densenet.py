"""DenseNet121/169/201 (keras.applications.densenet): Huang et al., "Densely Connected Convolutional
Networks" (CVPR 2017), layer for layer as Keras builds them, so Keras's weight files load."""

from __future__ import annotations

from dlgpu import layers
from dlgpu.applications import imagenet_utils
from dlgpu.models import Model

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/densenet/"
# blocks per stage -> (name, (with top, without top): Keras's published MD5s)
_PUBLISHED = {
    (6, 12, 24, 16): ("densenet121", ("9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738")),
    (6, 12, 32, 32): ("densenet169", ("d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b")),
    (6, 12, 48, 32): ("densenet201", ("1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1")),
}
_EPS = 1.001e-5


def dense_block(x, blocks, name):
    for i in range(blocks):
        x = conv_block(x, 32, name=f"{name}_block{i + 1}")
    return x


def transition_block(x, reduction, name):
    x = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(int(x.shape[3] * reduction), 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def conv_block(x, growth_rate, name):
    """BN-ReLU-1x1 (4 * growth_rate), BN-ReLU-3x3 (growth_rate), concatenated to the block's input."""
    x1 = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_0_bn")(x)
    x1 = layers.Activation("relu", name=f"{name}_0_relu")(x1)
    x1 = layers.Conv2D(4 * growth_rate, 1, use_bias=False, name=f"{name}_1_conv")(x1)
    x1 = layers.BatchNormalization(axis=3, epsilon=_EPS, name=f"{name}_1_bn")(x1)
    x1 = layers.Activation("relu", name=f"{name}_1_relu")(x1)
    x1 = layers.Conv2D(growth_rate, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x1)
    return layers.Concatenate(axis=3, name=f"{name}_concat")([x, x1])


def DenseNet(blocks, include_top=True, weights="imagenet", input_tensor=None, input_shape=None,  # noqa: N802
             pooling=None, classes=1000, classifier_activation="softmax", name="densenet"):
    """A DenseNet of four dense blocks of ``blocks`` convolution blocks each."""
    imagenet_utils.check_weights_argument(weights, include_top, classes)
    blocks = tuple(blocks)
    if weights == "imagenet" and blocks not in _PUBLISHED:
        raise ValueError(f"DenseNet: no ImageNet weights are published for blocks={list(blocks)}; known: "
                         f"{[list(b) for b in _PUBLISHED]}.")
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    img_input, sources = imagenet_utils.model_input(input_tensor, input_shape)
    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)))(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.BatchNormalization(axis=3, epsilon=_EPS, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)))(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, n in enumerate(blocks, start=2):
        x = dense_block(x, n, name=f"conv{stage}")
        if stage < 5:
            x = transition_block(x, 0.5, name=f"pool{stage}")
    x = layers.BatchNormalization(axis=3, epsilon=_EPS, name="bn")(x)
    x = layers.Activation("relu", name="relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = imagenet_utils.pool_or_flat(x, pooling, avg_name="avg_pool", max_name="max_pool")
    model = Model(sources if input_tensor is not None else img_input, x, name=name)
    file_name = url = file_hash = None
    if weights == "imagenet":
        stem, hashes = _PUBLISHED[blocks]
        file_name = f"{stem}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
        url = BASE_WEIGHTS_PATH + file_name
        file_hash = hashes[0 if include_top else 1]
    return imagenet_utils.load_model_weights(model, weights, file_name, url, file_hash)


_DOC = """Instantiate {model} (default input 224x224x3, at least 32x32; ``input_shape`` only without the top).

    ``weights``: None (random), "imagenet" (Keras's published weights, downloaded once into dlgpu's cache),
    or the path of a weights file.  ``pooling`` ("avg", "max" or None) applies when ``include_top=False``.
    Inputs are expected preprocessed by :func:`preprocess_input` (torch mode).
    """


def DenseNet121(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,  # noqa: N802
                pooling=None, classes=1000, classifier_activation="softmax", name="densenet121"):
    return DenseNet((6, 12, 24, 16), include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name=name)


def DenseNet169(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,  # noqa: N802
                pooling=None, classes=1000, classifier_activation="softmax", name="densenet169"):
    return DenseNet((6, 12, 32, 32), include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name=name)


def DenseNet201(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,  # noqa: N802
                pooling=None, classes=1000, classifier_activation="softmax", name="densenet201"):
    return DenseNet((6, 12, 48, 32), include_top, weights, input_tensor, input_shape, pooling, classes,
                    classifier_activation, name=name)


DenseNet121.__doc__ = _DOC.format(model="DenseNet121")
DenseNet169.__doc__ = _DOC.format(model="DenseNet169")
DenseNet201.__doc__ = _DOC.format(model="DenseNet201")


def preprocess_input(x, data_format=None):
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="torch")


decode_predictions = imagenet_utils.decode_predictions  # the one ImageNet class index


preprocess_input.__doc__ = imagenet_utils.PREPROCESS_INPUT_DOC.format(model="DenseNet", how=imagenet_utils.TORCH_DOC)
