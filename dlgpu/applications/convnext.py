"""ConvNeXt Tiny, Small, Base, Large and XLarge (keras.applications.convnext): Liu et al., "A ConvNet for
the 2020s" (CVPR 2022), layer for layer as Keras builds them, so Keras's weight files load.  With
``include_preprocessing`` (the default) the model normalises its inputs itself: pixels in [0, 255]."""

from __future__ import annotations

import numpy as np

from dlgpu import layers, ops
from dlgpu.applications import imagenet_utils
from dlgpu.layers import register
from dlgpu.layers.base import Layer
from dlgpu.models import Model, Sequential

BASE_WEIGHTS_PATH = "https://storage.googleapis.com/tensorflow/keras-applications/convnext/"
# (with top, without top): Keras's published SHA-256s
WEIGHTS_HASHES = {
    "convnext_tiny": ("8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff",
                      "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
    "convnext_small": ("ce1277d8f1ee5a0ef0e171469089c18f5233860ceaf9b168049cb9263fd7483c",
                       "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab"),
    "convnext_base": ("52cbb006d3dadd03f6e095a8ca1aca47aecdd75acb4bc74bce1f5c695d0086e6",
                      "40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45"),
    "convnext_large": ("070c5ed9ed289581e477741d3b34beffa920db8cf590899d6d2c67fba2a198a6",
                       "96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd"),
    "convnext_xlarge": ("c1f5ccab661354fc3a79a10fa99af82f0fbf10ec65cb894a3ae0815f17a889ee",
                        "de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05"),
}
MODEL_CONFIGS = {
    "tiny": {"depths": [3, 3, 9, 3], "projection_dims": [96, 192, 384, 768], "default_size": 224},
    "small": {"depths": [3, 3, 27, 3], "projection_dims": [96, 192, 384, 768], "default_size": 224},
    "base": {"depths": [3, 3, 27, 3], "projection_dims": [128, 256, 512, 1024], "default_size": 224},
    "large": {"depths": [3, 3, 27, 3], "projection_dims": [192, 384, 768, 1536], "default_size": 224},
    "xlarge": {"depths": [3, 3, 27, 3], "projection_dims": [256, 512, 1024, 2048], "default_size": 224},
}


@register
class StochasticDepth(layers.Dropout):
    """Drops a residual branch for whole samples while training (Huang et al., "Deep Networks with
    Stochastic Depth"), scaling the kept ones by 1/(1 - drop_path_rate); identity at inference.  Keras's
    formula, x / keep * floor(keep + U), is dropout with one draw per sample."""

    def __init__(self, drop_path_rate, **kwargs):
        super().__init__(drop_path_rate, **kwargs)
        self.drop_path_rate = drop_path_rate

    def call(self, inputs, training=None):
        if training and self.rate > 0:
            noise_shape = (inputs.shape[0],) + (1,) * (len(inputs.shape) - 1)
            return ops.dropout(inputs, self.rate, noise_shape, generator=self._generator(inputs.data))
        return inputs

    def get_config(self):
        config = Layer.get_config(self)
        config.update({"drop_path_rate": self.drop_path_rate})
        if self.seed is not None:
            config["seed"] = self.seed
        return config


@register
class LayerScale(Layer):
    """Multiplies the last axis by a trainable vector ``gamma`` started at ``init_values`` (Touvron et al.,
    "Going deeper with Image Transformers"): a residual branch starts almost switched off."""

    def __init__(self, init_values, projection_dim, **kwargs):
        super().__init__(**kwargs)
        self.init_values = init_values
        self.projection_dim = projection_dim

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.projection_dim:
            raise ValueError(f"Layer '{self.name}' (LayerScale): the last axis of the input must have "
                             f"projection_dim={self.projection_dim} entries; received input shape {tuple(input_shape)}")
        from dlgpu import initializers
        self.gamma = self.add_weight(shape=(self.projection_dim,), initializer=initializers.Constant(self.init_values),
                                     trainable=True, name="gamma")
        self.built = True

    def call(self, x):
        return x * self.gamma

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "init_values": self.init_values, "projection_dim": self.projection_dim}


def ConvNeXtBlock(projection_dim, drop_path_rate=0.0, layer_scale_init_value=1e-6, name=None):  # noqa: N802
    """7x7 depthwise convolution, LayerNorm, an MLP (4x wide, GELU) over channels, LayerScale, residual."""

    def apply(inputs):
        x = layers.Conv2D(filters=projection_dim, kernel_size=7, padding="same", groups=projection_dim,
                          name=f"{name}_depthwise_conv")(inputs)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_layernorm")(x)
        x = layers.Dense(4 * projection_dim, name=f"{name}_pointwise_conv_1")(x)
        x = layers.Activation("gelu", name=f"{name}_gelu")(x)
        x = layers.Dense(projection_dim, name=f"{name}_pointwise_conv_2")(x)
        if layer_scale_init_value is not None:
            x = LayerScale(layer_scale_init_value, projection_dim, name=f"{name}_layer_scale")(x)
        if drop_path_rate:
            layer = StochasticDepth(drop_path_rate, name=f"{name}_stochastic_depth")
        else:
            layer = layers.Activation("linear", name=f"{name}_identity")
        return inputs + layer(x)
    return apply


def PreStem(name=None):  # noqa: N802
    """ImageNet's normalisation of [0, 255] pixels, as a layer without weights."""

    def apply(x):
        return layers.Normalization(mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
                                    variance=[(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2],
                                    name=f"{name}_prestem_normalization")(x)
    return apply


def Head(num_classes=1000, classifier_activation=None, name=None):  # noqa: N802
    def apply(x):
        x = layers.GlobalAveragePooling2D(name=f"{name}_head_gap")(x)
        x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_head_layernorm")(x)
        return layers.Dense(num_classes, activation=classifier_activation, name=f"{name}_head_dense")(x)
    return apply


def ConvNeXt(depths, projection_dims, drop_path_rate=0.0, layer_scale_init_value=1e-6, default_size=224,  # noqa: N802
             name="convnext", include_preprocessing=True, include_top=True, weights=None, input_tensor=None,
             input_shape=None, pooling=None, classes=1000, classifier_activation="softmax", weights_name=None):
    """The ConvNeXt family: four stages of ``depths`` blocks at widths ``projection_dims``; the stem and
    the downsampling layers are small Sequential models, as in Keras (their weights sit under their names)."""
    imagenet_utils.check_weights_argument(weights, include_top, classes)
    if weights == "imagenet":
        if weights_name not in WEIGHTS_HASHES:
            raise ValueError(f"ConvNeXt: no ImageNet weights are published for weights_name={weights_name!r}; "
                             f"known: {sorted(WEIGHTS_HASHES)}.")
        expected = MODEL_CONFIGS[weights_name.split("convnext_")[-1]]
        if list(depths) != expected["depths"] or list(projection_dims) != expected["projection_dims"]:
            raise ValueError(f"Architecture configuration does not match {weights_name} variant. When using "
                             "pre-trained weights, the model architecture must match the pre-trained configuration "
                             f"exactly. Expected depths: {expected['depths']}, got: {depths}. Expected "
                             f"projection_dims: {expected['projection_dims']}, got: {projection_dims}.")
        if weights_name not in name:
            raise ValueError(f'Model name "{name}" does not match weights variant "{weights_name}". When using '
                             "imagenet weights, model name must contain the weights variant (e.g., "
                             f'"{weights_name}").')
    input_shape = imagenet_utils.obtain_input_shape(input_shape, default_size=default_size, min_size=32,
                                                    data_format="channels_last", require_flatten=include_top,
                                                    weights=weights)
    img_input, sources = imagenet_utils.model_input(input_tensor, input_shape)
    x = img_input
    if include_preprocessing and input_shape[2] == 3:
        x = PreStem(name=name)(x)
    stem = Sequential([layers.Conv2D(projection_dims[0], kernel_size=4, strides=4, name=f"{name}_stem_conv"),
                       layers.LayerNormalization(epsilon=1e-6, name=f"{name}_stem_layernorm")], name=f"{name}_stem")
    downsample_layers = [stem] + [
        Sequential([layers.LayerNormalization(epsilon=1e-6, name=f"{name}_downsampling_layernorm_{i}"),
                    layers.Conv2D(projection_dims[i + 1], kernel_size=2, strides=2,
                                  name=f"{name}_downsampling_conv_{i}")], name=f"{name}_downsampling_block_{i}")
        for i in range(3)]
    depth_drop_rates = [float(r) for r in np.linspace(0.0, drop_path_rate, sum(depths))]
    cur = 0
    for i in range(4):
        x = downsample_layers[i](x)
        for j in range(depths[i]):
            x = ConvNeXtBlock(projection_dim=projection_dims[i], drop_path_rate=depth_drop_rates[cur + j],
                              layer_scale_init_value=layer_scale_init_value, name=f"{name}_stage_{i}_block_{j}")(x)
        cur += depths[i]
    if include_top:
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = Head(num_classes=classes, classifier_activation=classifier_activation, name=name)(x)
    else:
        x = imagenet_utils.pool_or_flat(x, pooling)
        # Keras leaves this LayerNormalization unnamed: its published no-top files load by layer order
        x = layers.LayerNormalization(epsilon=1e-6)(x)
    model = Model(sources if input_tensor is not None else img_input, x, name=name)
    file_name = url = file_hash = None
    if weights == "imagenet":
        file_name = name + (".h5" if include_top else "_notop.h5")
        url = BASE_WEIGHTS_PATH + file_name
        file_hash = WEIGHTS_HASHES[weights_name][0 if include_top else 1]
    return imagenet_utils.load_model_weights(model, weights, file_name, url, file_hash)


_DOC = """Instantiate {model} (default input 224x224x3, at least 32x32; ``input_shape`` only without the top).

    With ``include_preprocessing=True`` the model takes float pixels in [0, 255] and normalises them with
    ImageNet's statistics (:func:`preprocess_input` passes them through).  ``weights``: None (random),
    "imagenet" (Keras's published weights, downloaded once into dlgpu's cache), or the path of a weights
    file.  ``pooling`` ("avg", "max" or None) applies when ``include_top=False``.
    """


def _variant(key):
    config = MODEL_CONFIGS[key]

    def build(include_top=True, include_preprocessing=True, weights="imagenet", input_tensor=None,
              input_shape=None, pooling=None, classes=1000, classifier_activation="softmax",
              name=f"convnext_{key}"):
        return ConvNeXt(weights_name=f"convnext_{key}", depths=config["depths"],
                        projection_dims=config["projection_dims"], drop_path_rate=0.0, layer_scale_init_value=1e-6,
                        default_size=config["default_size"], name=name, include_top=include_top,
                        include_preprocessing=include_preprocessing, weights=weights, input_tensor=input_tensor,
                        input_shape=input_shape, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation)
    build.__name__ = build.__qualname__ = "ConvNeXt" + {"xlarge": "XLarge"}.get(key, key.capitalize())
    build.__doc__ = _DOC.format(model=build.__name__)
    return build


ConvNeXtTiny = _variant("tiny")
ConvNeXtSmall = _variant("small")
ConvNeXtBase = _variant("base")
ConvNeXtLarge = _variant("large")
ConvNeXtXLarge = _variant("xlarge")


def preprocess_input(x, data_format=None):
    """A pass-through, as in Keras: ConvNeXt normalises its inputs itself (``include_preprocessing``)."""
    return x


decode_predictions = imagenet_utils.decode_predictions  # the one ImageNet class index
