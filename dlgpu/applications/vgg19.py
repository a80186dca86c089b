"""VGG19 (keras.applications.vgg19): VGG16 with four convolutions in each of its last three blocks, layer for
layer as Keras builds it, so Keras's weight files load by name."""

from __future__ import annotations

from dlgpu.applications import imagenet_utils
from dlgpu.applications.vgg16 import build_vgg

WEIGHTS_PATH = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
                "vgg19_weights_tf_dim_ordering_tf_kernels.h5")
WEIGHTS_PATH_NO_TOP = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
                       "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
WEIGHTS_HASH = "cbe5617147190e668d6c5d5026f83318"
WEIGHTS_HASH_NO_TOP = "253f8cb515780f3b799900260a226db6"

_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


def VGG19(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,  # noqa: N802
          classes=1000, classifier_activation="softmax", name="vgg19"):
    """Instantiate VGG19; the arguments are VGG16's (dlgpu.applications.VGG16)."""
    return build_vgg(_BLOCKS, include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation, name, (WEIGHTS_PATH, WEIGHTS_HASH),
                     (WEIGHTS_PATH_NO_TOP, WEIGHTS_HASH_NO_TOP))


def preprocess_input(x, data_format=None):
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="caffe")


decode_predictions = imagenet_utils.decode_predictions  # the one ImageNet class index


preprocess_input.__doc__ = imagenet_utils.PREPROCESS_INPUT_DOC.format(model="VGG19", how=imagenet_utils.CAFFE_DOC)
