"""Layers, one small file per family, and (de)serialization by class name."""

import inspect

from dlgpu.layers.adaptive_pooling import (AdaptiveAveragePooling1D, AdaptiveAveragePooling2D,
                                           AdaptiveAveragePooling3D, AdaptiveMaxPooling1D, AdaptiveMaxPooling2D,
                                           AdaptiveMaxPooling3D)
from dlgpu.layers.activation import ELU, LeakyReLU, PReLU, ReLU, Softmax
from dlgpu.layers.attention import (AdditiveAttention, Attention, GroupedQueryAttention, GroupQueryAttention,
                                    MultiHeadAttention)
from dlgpu.layers.audio import MelSpectrogram, STFTSpectrogram
from dlgpu.layers.base import Input, InputLayer, InputSpec, KerasTensor, Layer
from dlgpu.layers.conv import Conv1D, Conv2D, Conv3D, Convolution1D, Convolution2D, Convolution3D
from dlgpu.layers.conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from dlgpu.layers.conv_transpose import (Conv1DTranspose, Conv2DTranspose, Conv3DTranspose, Convolution1DTranspose,
                                         Convolution2DTranspose, Convolution3DTranspose)
from dlgpu.layers.core import (Activation, Dense, Dropout, Embedding, Flatten, Identity, Lambda, Reshape,
                               SpatialDropout1D, SpatialDropout2D, SpatialDropout3D)
from dlgpu.layers.depthwise_conv import (DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D, SeparableConv2D,
                                        SeparableConvolution1D, SeparableConvolution2D)
from dlgpu.layers.masking import Masking
from dlgpu.layers.merge import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add,
                                average, concatenate, dot, maximum, minimum, multiply, subtract)
from dlgpu.layers.pipeline import Pipeline
from dlgpu.layers.normalization import (BatchNormalization, GroupNormalization, LayerNormalization,
                                        RMSNormalization, UnitNormalization)
from dlgpu.layers.pooling import (AveragePooling1D, AveragePooling2D, AveragePooling3D, AvgPool1D, AvgPool2D,
                                  AvgPool3D, GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D,
                                  GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D, GlobalMaxPool1D, GlobalMaxPool2D,
                                  GlobalMaxPool3D, GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D,
                                  MaxPool1D, MaxPool2D, MaxPool3D, MaxPooling1D, MaxPooling2D, MaxPooling3D)
from dlgpu.layers.image_augmentation import (RandomBrightness, RandomContrast, RandomFlip, RandomRotation,
                                             RandomTranslation, RandomZoom)
from dlgpu.layers.image_color import (AutoContrast, RandomGrayscale, RandomInvert, RandomPosterization,
                                      Solarization)
from dlgpu.layers.image_color_adjust import (Equalization, RandomColorDegeneration, RandomColorJitter, RandomHue,
                                             RandomSaturation, RandomSharpness)
from dlgpu.layers.image_blur import RandomGaussianBlur
from dlgpu.layers.image_mixing import CutMix, MixUp
from dlgpu.layers.image_aug_mix import AugMix
from dlgpu.layers.image_clahe import ContrastLimitedAdaptiveHistogramEqualization
from dlgpu.layers.image_erasing import RandomErasing
from dlgpu.layers.image_geometry import RandomElasticTransform, RandomPerspective, RandomShear
from dlgpu.layers.image_rand_augment import RandAugment
from dlgpu.layers.image_preprocessing import CenterCrop, RandomCrop, Resizing
from dlgpu.layers.max_num_bounding_boxes import MaxNumBoundingBoxes
from dlgpu.layers.einsum_dense import EinsumDense
from dlgpu.layers.feature_space import FeatureSpace as _FeatureSpace
from dlgpu.layers.hashed_crossing import HashedCrossing
from dlgpu.layers.lookup import Hashing, IntegerLookup, StringLookup
from dlgpu.layers.preprocessing import CategoryEncoding, Discretization, Normalization, Rescaling
from dlgpu.layers.recurrent import GRU, LSTM, Bidirectional, SimpleRNN
from dlgpu.layers.regularization import ActivityRegularization, AlphaDropout, GaussianDropout, GaussianNoise
from dlgpu.layers.reversible_embedding import ReversibleEmbedding
from dlgpu.layers.rnn import RNN, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from dlgpu.layers.reshaping import (Cropping1D, Cropping2D, Cropping3D, Permute, RepeatVector, UpSampling1D,
                                    UpSampling2D, UpSampling3D, ZeroPadding1D, ZeroPadding2D, ZeroPadding3D)
from dlgpu.layers.text_vectorization import TextVectorization
from dlgpu.layers.torch_module import TorchModuleWrapper
from dlgpu.layers.wrappers import SpectralNormalization, TimeDistributed, Wrapper

_BUILTIN = {cls.__name__: cls for cls in (
    InputLayer, Dense, Activation, Dropout, SpatialDropout2D, Flatten, Reshape, Embedding, Conv1D, Conv2D,
    MaxPooling1D, AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling2D, AveragePooling2D,
    GlobalAveragePooling2D, GlobalMaxPooling2D, BatchNormalization, LayerNormalization, Add, Subtract, Multiply,
    Average, Maximum, Minimum, Concatenate, ReLU, LeakyReLU, Softmax, ELU, Rescaling, ZeroPadding2D, Cropping2D,
    UpSampling2D, Permute, RepeatVector, MultiHeadAttention, Attention, SimpleRNN, LSTM, GRU, Bidirectional,
    Normalization, Discretization, CategoryEncoding, Resizing, CenterCrop, RandomCrop, RandomFlip, RandomRotation,
    RandomZoom, RandomTranslation, RandomContrast, RandomBrightness,
    GaussianNoise, GaussianDropout, AlphaDropout, ActivityRegularization, GroupNormalization, UnitNormalization,
    RMSNormalization, Identity, Dot, TimeDistributed, ZeroPadding1D, ZeroPadding3D, Cropping1D, Cropping3D,
    UpSampling1D, UpSampling3D,
    Conv1DTranspose, Conv2DTranspose, DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D, SeparableConv2D,
    Masking, Conv3D, Conv3DTranspose, MaxPooling3D, AveragePooling3D, GlobalMaxPooling3D, GlobalAveragePooling3D,
    StringLookup, IntegerLookup, Hashing, HashedCrossing, TextVectorization, RNN, SimpleRNNCell, LSTMCell, GRUCell,
    StackedRNNCells, PReLU, AdditiveAttention, EinsumDense, GroupedQueryAttention, ConvLSTM1D, ConvLSTM2D,
    ConvLSTM3D, SpatialDropout1D, SpatialDropout3D, AdaptiveAveragePooling1D, AdaptiveAveragePooling2D,
    AdaptiveAveragePooling3D, AdaptiveMaxPooling1D, AdaptiveMaxPooling2D, AdaptiveMaxPooling3D,
    AutoContrast, Solarization, RandomInvert, RandomGrayscale, RandomPosterization, Equalization, RandomSharpness,
    RandomSaturation, RandomHue, RandomColorDegeneration, RandomColorJitter, Pipeline, SpectralNormalization,
    RandomGaussianBlur, MixUp, CutMix, AugMix, ContrastLimitedAdaptiveHistogramEqualization, RandomShear,
    RandomPerspective, RandomElasticTransform, RandomErasing, RandAugment, MaxNumBoundingBoxes,
    STFTSpectrogram, MelSpectrogram, ReversibleEmbedding)}
_BUILTIN["GroupQueryAttention"] = GroupedQueryAttention
# keras.utils.FeatureSpace is a layer that load_model must find by class name; it is exported from dlgpu.utils
_BUILTIN["FeatureSpace"] = _FeatureSpace
_custom = {}


def register(cls=None, name=None):
    """Make a custom layer loadable by class name (like keras.saving.register_keras_serializable)."""
    def wrap(c):
        _custom[name or c.__name__] = c
        return c
    return wrap(cls) if cls is not None else wrap


def serialize(layer):
    """Keras's dict for a layer: module, class_name, config (sublayers inside it serialized too),
    registered_name and, once built, build_config."""
    from dlgpu.saving import serialize_keras_object
    if not isinstance(layer, Layer):
        raise TypeError(f"layers.serialize expects a Layer; received {type(layer).__name__}")
    return serialize_keras_object(layer)


def deserialize(config, custom_objects=None):
    """A layer from {"class_name": ..., "config": ...}; only known classes, never arbitrary code."""
    name = config.get("class_name")
    from dlgpu.saving import get_registered_object, scoped_custom_objects
    lookup = {**_BUILTIN, **_custom, **scoped_custom_objects(), **(custom_objects or {})}
    # A class registered as "package>name" is found by that name, whatever the class itself is called.
    registered = config.get("registered_name")
    if isinstance(registered, str) and name not in lookup:
        found = get_registered_object(registered, custom_objects)
        if isinstance(found, type):
            lookup[name] = found
    from dlgpu import models
    lookup.setdefault("Sequential", models.Sequential)
    lookup.setdefault("Functional", models.Model)
    lookup.setdefault("Model", models.Model)
    if name not in lookup:
        raise ValueError(f"Unknown layer class {name!r}. Built-in layers are {sorted(_BUILTIN)}; pass custom "
                         f"classes with custom_objects={{'{name}': {name}}} or register them with "
                         f"dlgpu.layers.register.")
    cls = lookup[name]
    layer_config = dict(config.get("config", {}))
    from_config = getattr(cls, "from_config", None)
    if from_config is None:
        return cls(**layer_config)
    if "custom_objects" in inspect.signature(from_config).parameters:  # models: their layers may be custom
        layer = from_config(layer_config, custom_objects=custom_objects)
    else:
        layer = from_config(layer_config)
    # As Keras's deserialize_keras_object: a layer serialized once built comes back built (its weights exist,
    # and a wrapper's or RNN's config round-trips with its sublayer's build_config).
    build = config.get("build_config")
    if build and not layer.built:
        layer.build_from_config(build)
    return layer
