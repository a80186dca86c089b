"""Ready-made image classifiers (keras.applications), built from dlgpu layers with Keras's layer names,
so Keras's published ImageNet weights (legacy ``.h5``, read with h5py: ``pip install 'dlgpu[applications]'``)
load by layer name.  Each model's module has its ``preprocess_input`` and ``decode_predictions``."""

from dlgpu.applications import (densenet, imagenet_utils, mobilenet, mobilenet_v2, resnet, resnet50, resnet_v2, vgg16,
                                vgg19)
from dlgpu.applications.densenet import DenseNet121, DenseNet169, DenseNet201
from dlgpu.applications.mobilenet import MobileNet
from dlgpu.applications.mobilenet_v2 import MobileNetV2
from dlgpu.applications.resnet import ResNet50, ResNet101, ResNet152
from dlgpu.applications.resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from dlgpu.applications.vgg16 import VGG16
from dlgpu.applications.vgg19 import VGG19

__all__ = ["densenet", "imagenet_utils", "mobilenet", "mobilenet_v2", "resnet", "resnet50", "resnet_v2", "vgg16",
           "vgg19", "DenseNet121", "DenseNet169", "DenseNet201", "MobileNet", "MobileNetV2", "ResNet50", "ResNet101",
           "ResNet152", "ResNet50V2", "ResNet101V2", "ResNet152V2", "VGG16", "VGG19"]
