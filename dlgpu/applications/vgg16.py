"""VGG16 (keras.applications.vgg16): Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale
Image Recognition" (ICLR 2015), layer for layer as Keras builds it, so Keras's weight files load by name."""

from __future__ import annotations

from dlgpu import layers
from dlgpu.applications import imagenet_utils
from dlgpu.models import Model

WEIGHTS_PATH = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
                "vgg16_weights_tf_dim_ordering_tf_kernels.h5")
WEIGHTS_PATH_NO_TOP = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
                       "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
WEIGHTS_HASH = "64373286793e3c8b2b4e3219cbf3544b"
WEIGHTS_HASH_NO_TOP = "6d6bbae143d832006294945121d1f1fc"

# (filters, convolutions) of the five blocks
_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def VGG16(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,  # noqa: N802
          classes=1000, classifier_activation="softmax", name="vgg16"):
    """Instantiate VGG16 (default input 224x224x3, at least 32x32; ``input_shape`` only without the top).

    ``weights``: None (random), "imagenet" (Keras's published weights, downloaded once into dlgpu's cache),
    or the path of a weights file.  ``pooling`` ("avg", "max" or None) applies when ``include_top=False``.
    Inputs are expected preprocessed by :func:`preprocess_input`.
    """
    return build_vgg(_BLOCKS, include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation, name, (WEIGHTS_PATH, WEIGHTS_HASH),
                     (WEIGHTS_PATH_NO_TOP, WEIGHTS_HASH_NO_TOP))


def build_vgg(blocks, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation,
              name, top_weights, no_top_weights):
    """A VGG network of ``blocks`` ((filters, convolutions) per block): VGG16 and VGG19 differ only there."""
    imagenet_utils.check_weights_argument(weights, include_top, classes)
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=224, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    img_input, sources = imagenet_utils.model_input(input_tensor, input_shape)
    x = img_input
    for b, (filters, convs) in enumerate(blocks, start=1):
        for c in range(1, convs + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same", name=f"block{b}_conv{c}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{b}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    else:
        x = imagenet_utils.pool_or_flat(x, pooling)
    model = Model(sources if input_tensor is not None else img_input, x, name=name)
    url, file_hash = top_weights if include_top else no_top_weights
    return imagenet_utils.load_model_weights(model, weights, url.rsplit("/", 1)[1], url, file_hash)


def preprocess_input(x, data_format=None):
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


decode_predictions = imagenet_utils.decode_predictions  # the one ImageNet class index


preprocess_input.__doc__ = imagenet_utils.PREPROCESS_INPUT_DOC.format(model="VGG16", how=imagenet_utils.CAFFE_DOC)
