"""Ready-made image classifiers (keras.applications), built from dlgpu layers with Keras's layer names,
so Keras's published ImageNet weights (legacy ``.h5``, read with h5py: ``pip install 'dlgpu[applications]'``)
load.  Each model's module has its ``preprocess_input`` and ``decode_predictions``."""

from dlgpu.applications import (convnext, densenet, efficientnet, efficientnet_v2, imagenet_utils,
                                inception_resnet_v2, inception_v3, mobilenet, mobilenet_v2, mobilenet_v3, nasnet,
                                resnet, resnet50, resnet_v2, vgg16, vgg19, xception)
from dlgpu.applications.convnext import ConvNeXtBase, ConvNeXtLarge, ConvNeXtSmall, ConvNeXtTiny, ConvNeXtXLarge
from dlgpu.applications.densenet import DenseNet121, DenseNet169, DenseNet201
from dlgpu.applications.efficientnet import (EfficientNetB0, EfficientNetB1, EfficientNetB2, EfficientNetB3,
                                             EfficientNetB4, EfficientNetB5, EfficientNetB6, EfficientNetB7)
from dlgpu.applications.efficientnet_v2 import (EfficientNetV2B0, EfficientNetV2B1, EfficientNetV2B2,
                                                EfficientNetV2B3, EfficientNetV2L, EfficientNetV2M, EfficientNetV2S)
from dlgpu.applications.inception_resnet_v2 import InceptionResNetV2
from dlgpu.applications.inception_v3 import InceptionV3
from dlgpu.applications.mobilenet import MobileNet
from dlgpu.applications.mobilenet_v2 import MobileNetV2
from dlgpu.applications.mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from dlgpu.applications.nasnet import NASNetLarge, NASNetMobile
from dlgpu.applications.resnet import ResNet50, ResNet101, ResNet152
from dlgpu.applications.resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from dlgpu.applications.vgg16 import VGG16
from dlgpu.applications.vgg19 import VGG19
from dlgpu.applications.xception import Xception

__all__ = ["convnext", "densenet", "efficientnet", "efficientnet_v2", "imagenet_utils", "inception_resnet_v2",
           "inception_v3", "mobilenet", "mobilenet_v2", "mobilenet_v3", "nasnet", "resnet", "resnet50", "resnet_v2",
           "vgg16", "vgg19", "xception", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny",
           "ConvNeXtXLarge", "DenseNet121", "DenseNet169", "DenseNet201", "EfficientNetB0", "EfficientNetB1",
           "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5", "EfficientNetB6",
           "EfficientNetB7", "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
           "EfficientNetV2L", "EfficientNetV2M", "EfficientNetV2S", "InceptionResNetV2", "InceptionV3", "MobileNet",
           "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small", "NASNetLarge", "NASNetMobile", "ResNet50",
           "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2", "ResNet152V2", "VGG16", "VGG19", "Xception"]
