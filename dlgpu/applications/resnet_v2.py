"""ResNet50V2/101V2/152V2 (keras.applications.resnet_v2): He et al., "Identity Mappings in Deep Residual
Networks" (ECCV 2016), pre-activation blocks, layer for layer as Keras builds them, so Keras's weight files
load."""

from __future__ import annotations

from dlgpu.applications import imagenet_utils
from dlgpu.applications.resnet import ResNet, stack_residual_blocks_v2


def _stages(blocks):
    def stack_fn(x):
        x = stack_residual_blocks_v2(x, 64, blocks[0], name="conv2")
        x = stack_residual_blocks_v2(x, 128, blocks[1], name="conv3")
        x = stack_residual_blocks_v2(x, 256, blocks[2], name="conv4")
        return stack_residual_blocks_v2(x, 512, blocks[3], stride1=1, name="conv5")
    return stack_fn


def _resnet_v2(blocks, weights_name, include_top, weights, input_tensor, input_shape, pooling, classes,
               classifier_activation, name):
    return ResNet(_stages(blocks), preact=True, use_bias=True, include_top=include_top, weights=weights,
                  input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                  classifier_activation=classifier_activation, name=name, weights_name=weights_name)


_DOC = """Instantiate {model} (default input 224x224x3, at least 32x32; ``input_shape`` only without the top).

    ``weights``: None (random), "imagenet" (Keras's published weights, downloaded once into dlgpu's cache),
    or the path of a weights file.  ``pooling`` ("avg", "max" or None) applies when ``include_top=False``.
    Inputs are expected preprocessed by :func:`preprocess_input` (scaled to [-1, 1]).
    """


def ResNet50V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,  # noqa: N802
               pooling=None, classes=1000, classifier_activation="softmax", name="resnet50v2"):
    return _resnet_v2((3, 4, 6, 3), "resnet50v2", include_top, weights, input_tensor, input_shape, pooling,
                      classes, classifier_activation, name)


def ResNet101V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,  # noqa: N802
                pooling=None, classes=1000, classifier_activation="softmax", name="resnet101v2"):
    return _resnet_v2((3, 4, 23, 3), "resnet101v2", include_top, weights, input_tensor, input_shape, pooling,
                      classes, classifier_activation, name)


def ResNet152V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,  # noqa: N802
                pooling=None, classes=1000, classifier_activation="softmax", name="resnet152v2"):
    return _resnet_v2((3, 8, 36, 3), "resnet152v2", include_top, weights, input_tensor, input_shape, pooling,
                      classes, classifier_activation, name)


ResNet50V2.__doc__ = _DOC.format(model="ResNet50V2")
ResNet101V2.__doc__ = _DOC.format(model="ResNet101V2")
ResNet152V2.__doc__ = _DOC.format(model="ResNet152V2")


def preprocess_input(x, data_format=None):
    return imagenet_utils.preprocess_input(x, data_format=data_format, mode="tf")


decode_predictions = imagenet_utils.decode_predictions  # the one ImageNet class index


preprocess_input.__doc__ = imagenet_utils.PREPROCESS_INPUT_DOC.format(model="ResNetV2", how=imagenet_utils.TF_DOC)
