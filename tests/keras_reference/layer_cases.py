"""The table: layer name, constructor arguments, input shape(s) and options, for the differential layer test.

Options: ``call`` (call keyword arguments), ``dtype`` (input dtype; "int" gives integers in [0, high)),
``high``, ``range`` (low, high of float inputs; default (-1, 1)),
``sym`` (symbolic input shapes without the batch dimension, None for unknown), ``rtol``/``atol`` (of the outputs),
``grad_atol`` (absolute tolerance of the gradients, for sums whose terms cancel),
``train`` (also compare a training=True call), ``no_grad`` (no gradient comparison: not differentiable),
``keras_no_output_shape`` (Keras's class lacks compute_output_shape: dlgpu's is held to the symbolic calls).
"""

C = []


def case(name, kwargs, shapes, **opts):
    C.append((name, kwargs, shapes if isinstance(shapes, list) else [shapes], opts))


# -- core ---------------------------------------------------------------------------------------------------
case("Dense", dict(units=5), (3, 4))
case("Dense", dict(units=3, activation="relu", use_bias=False), (2, 3, 4), sym=[(None, 4)])
case("Dense", dict(units=1, activation="tanh"), (1, 7))
case("EinsumDense", dict(equation="ab,bc->ac", output_shape=5, bias_axes="c"), (3, 4))
# Keras leaves an output axis given as None unknown in compute_output_shape even when the input knows it
# ((None, None, 6)); dlgpu takes it from the input ((None, 3, 6)), the shape the call really returns.
case("EinsumDense", dict(equation="abc,cd->abd", output_shape=(None, 6), bias_axes="d", activation="relu"), (2, 3, 4),
     shape_differs={"keras": (None, None, 6), "dlgpu": (None, 3, 6)})
case("Embedding", dict(input_dim=10, output_dim=4), (3, 5), dtype="int", high=10)
case("Embedding", dict(input_dim=7, output_dim=3, mask_zero=True), (2, 4), dtype="int", high=7)
case("Activation", dict(activation="gelu"), (3, 4))
case("Activation", dict(activation="softplus"), (3, 4))
case("Identity", {}, (3, 4))
case("Masking", dict(mask_value=0.0), (2, 3, 4))
case("ActivityRegularization", dict(l1=0.01, l2=0.02), (3, 4))
case("Dropout", dict(rate=0.3), (3, 4))
case("AlphaDropout", dict(rate=0.3), (3, 4))
case("GaussianDropout", dict(rate=0.3), (3, 4))
case("GaussianNoise", dict(stddev=0.3), (3, 4))
case("SpatialDropout2D", dict(rate=0.3), (2, 4, 4, 3))

# -- activations as layers ------------------------------------------------------------------------------------
case("ReLU", {}, (3, 4))
case("ReLU", dict(max_value=0.5, negative_slope=0.1, threshold=0.2), (3, 4))
case("LeakyReLU", dict(negative_slope=0.2), (3, 4))
case("ELU", dict(alpha=0.7), (3, 4))
case("PReLU", {}, (2, 3, 4))
case("PReLU", dict(shared_axes=[1]), (2, 3, 4))
case("Softmax", {}, (3, 4))
case("Softmax", dict(axis=1), (2, 3, 4))

# -- convolutions -------------------------------------------------------------------------------------------
case("Conv1D", dict(filters=4, kernel_size=3), (2, 9, 3))
case("Conv1D", dict(filters=4, kernel_size=3, strides=2, padding="same"), (2, 9, 3))
case("Conv1D", dict(filters=4, kernel_size=3, dilation_rate=2, padding="causal"), (2, 9, 3))
case("Conv1D", dict(filters=4, kernel_size=2, groups=2, activation="relu"), (2, 8, 4))
case("Conv2D", dict(filters=4, kernel_size=3), (2, 7, 6, 3), sym=[(None, None, 3)])
case("Conv2D", dict(filters=4, kernel_size=(3, 2), strides=(2, 1), padding="same"), (2, 7, 6, 3))
case("Conv2D", dict(filters=6, kernel_size=3, dilation_rate=2, groups=3), (2, 8, 8, 3))
case("Conv2D", dict(filters=2, kernel_size=1, use_bias=False, padding="same", strides=3), (1, 5, 5, 2))
case("Conv3D", dict(filters=3, kernel_size=2), (2, 4, 5, 3, 2))
case("Conv3D", dict(filters=4, kernel_size=3, strides=2, padding="same", groups=2), (1, 5, 4, 6, 2))
case("Conv1DTranspose", dict(filters=3, kernel_size=3), (2, 5, 2))
case("Conv1DTranspose", dict(filters=3, kernel_size=3, strides=2, padding="same"), (2, 5, 2))
case("Conv2DTranspose", dict(filters=3, kernel_size=3), (2, 4, 5, 2))
case("Conv2DTranspose", dict(filters=3, kernel_size=(3, 2), strides=2, padding="same"), (2, 4, 5, 2))
case("Conv2DTranspose", dict(filters=2, kernel_size=3, strides=2, output_padding=1), (1, 3, 3, 2))
case("Conv2DTranspose", dict(filters=2, kernel_size=3, dilation_rate=2), (1, 4, 4, 2))
case("Conv3DTranspose", dict(filters=2, kernel_size=2, strides=2), (1, 3, 2, 3, 2))
case("Conv3DTranspose", dict(filters=2, kernel_size=3, padding="same"), (1, 3, 2, 3, 2))
case("DepthwiseConv1D", dict(kernel_size=3, depth_multiplier=2), (2, 7, 3))
case("DepthwiseConv1D", dict(kernel_size=3, strides=2, padding="same"), (2, 7, 3))
case("DepthwiseConv2D", dict(kernel_size=3), (2, 6, 5, 3))
case("DepthwiseConv2D", dict(kernel_size=3, depth_multiplier=2, strides=2, padding="same"), (2, 6, 5, 3))
case("DepthwiseConv2D", dict(kernel_size=2, dilation_rate=2), (1, 6, 6, 2))
case("SeparableConv1D", dict(filters=4, kernel_size=3), (2, 7, 3))
case("SeparableConv1D", dict(filters=4, kernel_size=3, depth_multiplier=2, padding="same", strides=2), (2, 7, 3))
case("SeparableConv2D", dict(filters=4, kernel_size=3), (2, 6, 5, 3))
case("SeparableConv2D", dict(filters=4, kernel_size=3, dilation_rate=2, depth_multiplier=2), (1, 7, 7, 2))

# -- pooling ------------------------------------------------------------------------------------------------
case("MaxPooling1D", {}, (2, 7, 3))
case("MaxPooling1D", dict(pool_size=3, strides=2, padding="same"), (2, 8, 3))
case("AveragePooling1D", dict(pool_size=3, strides=1, padding="same"), (2, 7, 3))
case("MaxPooling2D", {}, (2, 5, 6, 3))
case("MaxPooling2D", dict(pool_size=3, strides=2, padding="same"), (2, 5, 6, 3))
case("AveragePooling2D", dict(pool_size=2), (2, 5, 6, 3))
# Keras's torch backend averages the asymmetric 'same' padding in (count_include_pad) where TensorFlow, the
# reference semantics, averages the real inputs only; dlgpu follows TensorFlow (test_average_pool_same_padding).
case("AveragePooling2D", dict(pool_size=3, strides=2, padding="same"), (2, 5, 6, 3), keras_torch_bug=True)
case("MaxPooling3D", {}, (1, 4, 5, 4, 2))
case("AveragePooling3D", dict(pool_size=2, padding="same"), (1, 3, 5, 4, 2))
case("GlobalAveragePooling1D", {}, (2, 5, 3))
case("GlobalAveragePooling1D", dict(keepdims=True), (2, 5, 3))
case("GlobalMaxPooling1D", {}, (2, 5, 3))
case("GlobalAveragePooling2D", {}, (2, 4, 5, 3))
case("GlobalMaxPooling2D", dict(keepdims=True), (2, 4, 5, 3))
case("GlobalAveragePooling3D", {}, (1, 3, 4, 2, 3))
case("GlobalMaxPooling3D", {}, (1, 3, 4, 2, 3))

# -- normalization ------------------------------------------------------------------------------------------
case("BatchNormalization", {}, (4, 3), train=True)
case("BatchNormalization", dict(axis=1, momentum=0.9, epsilon=1e-2), (4, 3, 5), train=True)
case("BatchNormalization", dict(center=False, scale=False), (3, 4, 4, 2), train=True)
case("LayerNormalization", {}, (3, 5))
case("LayerNormalization", dict(axis=[1, 2], center=False), (2, 3, 4))
case("LayerNormalization", dict(rms_scaling=True), (2, 3, 4))
case("GroupNormalization", dict(groups=2), (2, 3, 4))
case("GroupNormalization", dict(groups=3, epsilon=1e-2), (2, 4, 4, 6))
case("GroupNormalization", dict(groups=-1), (2, 5, 4))
case("UnitNormalization", {}, (3, 4))
case("UnitNormalization", dict(axis=[1, 2]), (2, 3, 4))
case("RMSNormalization", {}, (2, 3, 4))
case("Normalization", dict(mean=[0.5, -1.0, 2.0], variance=[1.0, 4.0, 0.25]), (4, 3))
case("Normalization", dict(mean=1.0, variance=2.0, invert=True), (4, 3))

# -- recurrent ----------------------------------------------------------------------------------------------
for cls in ("SimpleRNN", "LSTM", "GRU"):
    case(cls, dict(units=3), (2, 5, 4), sym=[(None, 4)])
    case(cls, dict(units=3, return_sequences=True, return_state=True), (2, 5, 4))
    case(cls, dict(units=2, go_backwards=True, return_sequences=True), (2, 4, 3))
    case(cls, dict(units=2, activation="relu", use_bias=False), (1, 3, 2))
case("GRU", dict(units=3, reset_after=False, return_sequences=True), (2, 5, 4))
case("LSTM", dict(units=3, unit_forget_bias=False, recurrent_activation="hard_sigmoid"), (2, 5, 4))
case("Bidirectional", dict(layer=("LSTM", dict(units=3, return_sequences=True))), (2, 5, 4))
case("Bidirectional", dict(layer=("GRU", dict(units=2)), merge_mode="sum"), (2, 5, 4))
case("Bidirectional", dict(layer=("SimpleRNN", dict(units=2, return_sequences=True)), merge_mode="mul"), (2, 4, 3))
case("ConvLSTM1D", dict(filters=2, kernel_size=3), (2, 3, 6, 2))
case("ConvLSTM2D", dict(filters=2, kernel_size=3), (2, 3, 5, 5, 2))
case("ConvLSTM2D", dict(filters=2, kernel_size=2, padding="same", return_sequences=True), (1, 3, 4, 4, 2))
case("ConvLSTM3D", dict(filters=2, kernel_size=2), (1, 2, 3, 3, 3, 1))
case("TimeDistributed", dict(layer=("Dense", dict(units=3))), (2, 4, 5))
# SpectralNormalization with Keras's vector_u copied in: inference runs the layer as it is; the training call
# (power iteration, kernel / sigma assigned) is compared through its output, gradients and the weights after it
case("SpectralNormalization", dict(layer=("Dense", dict(units=3))), (3, 4), train=True)
case("SpectralNormalization", dict(layer=("Conv2D", dict(filters=2, kernel_size=2)), power_iterations=3),
     (2, 5, 4, 3), train=True)
case("Pipeline", dict(layers=[("Dense", dict(units=3)), ("Rescaling", dict(scale=2.0, offset=0.5)),
                              ("Activation", dict(activation="tanh"))]), (3, 4),
     keras_no_output_shape=True)
case("Pipeline", dict(layers=[("Conv2D", dict(filters=2, kernel_size=3)), ("GlobalAveragePooling2D", {})]),
     (2, 6, 5, 3), train=True, keras_no_output_shape=True)

# -- attention ----------------------------------------------------------------------------------------------
case("MultiHeadAttention", dict(num_heads=2, key_dim=3), [(2, 4, 5), (2, 6, 5)], positional=True)
case("MultiHeadAttention", dict(num_heads=3, key_dim=2, value_dim=4, use_bias=False, output_shape=7),
     [(2, 4, 5), (2, 3, 5)], positional=True)
case("GroupQueryAttention", dict(head_dim=2, num_query_heads=4, num_key_value_heads=2), [(2, 4, 5), (2, 3, 5)], positional=True)
case("Attention", {}, [(2, 4, 3), (2, 5, 3)])
case("Attention", dict(use_scale=True, score_mode="concat"), [(2, 4, 3), (2, 5, 3)])
case("Attention", {}, [(2, 4, 3), (2, 5, 3)], call=dict(use_causal_mask=True), no_grad_note="")
case("AdditiveAttention", {}, [(2, 4, 3), (2, 5, 3)])
case("AdditiveAttention", dict(use_scale=False), [(2, 4, 3), (2, 5, 3), (2, 5, 3)])

# -- merges -------------------------------------------------------------------------------------------------
for cls in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
    case(cls, {}, [(3, 4), (3, 4)])
for cls in ("Add", "Multiply", "Average", "Maximum"):
    case(cls, {}, [(2, 3, 4), (2, 3, 4), (2, 3, 4)])
case("Concatenate", {}, [(2, 3, 4), (2, 3, 2)])
case("Concatenate", dict(axis=1), [(2, 3, 4), (2, 1, 4)])
case("Dot", dict(axes=1), [(3, 4), (3, 4)])
case("Dot", dict(axes=(2, 2)), [(2, 3, 4), (2, 5, 4)])
case("Dot", dict(axes=1, normalize=True), [(3, 4), (3, 4)])

# -- reshaping ----------------------------------------------------------------------------------------------
case("Flatten", {}, (2, 3, 4))
case("Flatten", dict(data_format="channels_first"), (2, 3, 4, 2))
case("Reshape", dict(target_shape=(6, 2)), (2, 3, 4))
case("Reshape", dict(target_shape=(-1, 3)), (2, 3, 4))
case("Permute", dict(dims=(2, 1)), (2, 3, 4))
case("RepeatVector", dict(n=3), (2, 4))
case("Cropping1D", dict(cropping=(1, 2)), (2, 6, 3))
case("Cropping2D", dict(cropping=((1, 0), (2, 1))), (2, 5, 6, 3))
case("Cropping3D", dict(cropping=1), (1, 4, 4, 4, 2))
case("ZeroPadding1D", dict(padding=2), (2, 4, 3))
case("ZeroPadding2D", dict(padding=((1, 0), (2, 1))), (2, 3, 4, 2))
case("ZeroPadding3D", dict(padding=(1, 0, 2)), (1, 2, 3, 2, 2))
case("UpSampling1D", dict(size=3), (2, 4, 3))
case("UpSampling2D", dict(size=(2, 3)), (2, 3, 4, 2))
case("UpSampling2D", dict(size=2, interpolation="bilinear"), (2, 3, 4, 2))
case("UpSampling3D", dict(size=2), (1, 2, 3, 2, 2))

# -- deterministic preprocessing ----------------------------------------------------------------------------
case("Rescaling", dict(scale=1 / 255.0, offset=-0.5), (2, 4, 4, 3))
case("CenterCrop", dict(height=3, width=2), (2, 5, 4, 3))
case("Resizing", dict(height=3, width=5), (2, 6, 4, 3))
case("Resizing", dict(height=4, width=4, interpolation="nearest"), (2, 6, 5, 3))
case("Resizing", dict(height=3, width=3, crop_to_aspect_ratio=True), (2, 6, 4, 3))
case("CategoryEncoding", dict(num_tokens=5, output_mode="multi_hot"), (3, 2), dtype="int", high=5, no_grad=True)
case("CategoryEncoding", dict(num_tokens=5, output_mode="count"), (3, 4), dtype="int", high=5, no_grad=True)
case("CategoryEncoding", dict(num_tokens=5, output_mode="one_hot"), (3,), dtype="int", high=5, no_grad=True)
case("Discretization", dict(bin_boundaries=[-0.5, 0.0, 0.5]), (3, 4), no_grad=True)

# -- spatial dropout and adaptive pooling -------------------------------------------------------------------
case("SpatialDropout1D", dict(rate=0.3), (2, 5, 3))
case("SpatialDropout3D", dict(rate=0.3), (1, 3, 4, 2, 3))
case("AdaptiveAveragePooling1D", dict(output_size=3), (2, 7, 3))
case("AdaptiveAveragePooling1D", dict(output_size=4, data_format="channels_first"), (2, 3, 9))
case("AdaptiveAveragePooling2D", dict(output_size=(2, 3)), (2, 5, 7, 3))
case("AdaptiveAveragePooling2D", dict(output_size=4), (1, 4, 6, 2))
case("AdaptiveAveragePooling3D", dict(output_size=(2, 3, 2)), (1, 5, 4, 3, 2))
case("AdaptiveMaxPooling1D", dict(output_size=3), (2, 7, 3))
case("AdaptiveMaxPooling2D", dict(output_size=(3, 2)), (2, 5, 7, 3))
case("AdaptiveMaxPooling2D", dict(output_size=5, data_format="channels_first"), (1, 2, 7, 6))
case("AdaptiveMaxPooling3D", dict(output_size=2), (1, 5, 4, 3, 2))
case("AdaptiveAveragePooling1D", dict(output_size=5), (2, 3, 2), sym=[(None, 2)])  # bins overlap: more out than in
case("AdaptiveMaxPooling1D", dict(output_size=5), (2, 3, 2))

# -- colour transforms: AutoContrast, and the augmentations with factors that leave nothing to chance --------
case("AutoContrast", {}, (2, 4, 5, 3), range=(10.0, 200.0))
case("AutoContrast", dict(value_range=(-1, 1)), (2, 4, 5, 3))
case("AutoContrast", dict(value_range=(0, 1)), (1, 3, 3, 1), range=(0.2, 0.7))
case("Solarization", {}, (2, 4, 5, 3), range=(0.0, 255.0))
case("Solarization", dict(value_range=(-1, 1)), (2, 4, 5, 3))
case("RandomInvert", dict(factor=(1.0, 1.0)), (2, 4, 5, 3), range=(0.0, 255.0))
case("RandomInvert", dict(factor=(1.0, 1.0), value_range=(0, 1)), (2, 4, 5, 3), range=(0.0, 1.0))
case("RandomGrayscale", dict(factor=1.0), (2, 4, 5, 3))
case("RandomGrayscale", dict(factor=1.0), (2, 4, 5, 1))
case("RandomGrayscale", dict(factor=0.0), (2, 4, 5, 3))
# Keras casts to uint8 on the way, which torch autograd does not cross: no gradient to compare
case("RandomPosterization", dict(factor=(3, 3)), (2, 4, 5, 3), range=(0.0, 255.0), no_grad=True)
case("RandomPosterization", dict(factor=(8, 8), value_range=(0, 1)), (2, 4, 5, 3), range=(0.0, 1.0), no_grad=True)
case("RandomPosterization", dict(factor=(1, 1), value_range=(-1, 1)), (2, 4, 5, 3), no_grad=True)
# Equalization, and the colour augmentations with factors that leave nothing to chance (RandomHue: a shift of
# +-1/2 wraps to the same hue either way)
case("Equalization", {}, (2, 6, 5, 3), range=(0.0, 255.0), call=dict(training=True))
case("Equalization", dict(value_range=(-1, 1), bins=16), (2, 6, 5, 3), call=dict(training=True))
case("Equalization", dict(value_range=(0, 1), bins=4), (1, 4, 4, 2), range=(0.2, 0.3), call=dict(training=True))
case("Equalization", {}, (2, 6, 5, 3), range=(0.0, 255.0))
case("RandomSharpness", dict(factor=(0.0, 0.0)), (2, 5, 6, 3), range=(0.0, 255.0))
case("RandomSharpness", dict(factor=(0.9, 0.9), value_range=(-1, 1)), (2, 5, 6, 2))
case("RandomSaturation", dict(factor=(0.3, 0.3), value_range=(0, 1)), (2, 4, 5, 3), range=(0.0, 1.0))
case("RandomSaturation", dict(factor=(0.8, 0.8)), (2, 4, 5, 3), range=(0.0, 255.0))
case("RandomHue", dict(factor=(1.0, 1.0)), (2, 4, 5, 3), range=(0.0, 255.0))
case("RandomHue", dict(factor=(0.0, 0.0), value_range=(0, 1)), (2, 4, 5, 3), range=(0.0, 1.0))
case("RandomColorDegeneration", dict(factor=(0.6, 0.6)), (2, 4, 5, 3), range=(0.0, 255.0))
case("RandomColorDegeneration", dict(factor=(-0.5, -0.5), value_range=(-1, 1)), (2, 4, 5, 3))
# (Keras's brightness step adds in place to its input, which torch refuses for a tensor that requires grad:
# brightness inside the jitter is checked against dlgpu's RandomBrightness in tests/layers/test_image_color_adjust.py)
case("RandomColorJitter", dict(contrast_factor=0.0, saturation_factor=(0.7, 0.7),
                               hue_factor=(1.0, 1.0)), (2, 4, 5, 3), range=(0.0, 255.0))
case("RandomColorJitter", dict(value_range=(0, 1), saturation_factor=(0.4, 0.4)), (2, 4, 5, 3), range=(0.0, 1.0))
# RandomGaussianBlur with factor (1, 1) blurs every image (u < 1) and a fixed sigma leaves nothing to chance
case("RandomGaussianBlur", dict(factor=(1.0, 1.0), sigma=(0.7, 0.7)), (2, 5, 6, 3), range=(0.0, 255.0))
case("RandomGaussianBlur", dict(factor=(1.0, 1.0), kernel_size=5, sigma=(0.3, 0.3), value_range=(0, 1)),
     (2, 6, 6, 2), range=(0.0, 1.0))
case("RandomGaussianBlur", dict(factor=0.0), (2, 4, 5, 3), range=(0.0, 255.0))
# CLAHE where Keras's torch backend computes the algorithm as its numpy and TensorFlow backends do.  On torch its
# histograms are int64 (torch one_hot), so it truncates the clip limit clip_limit * tile area / 256 to an integer,
# and its "symmetric" pad is "replicate"; here the limits are integers (4, 1, 2) or off (0) and the padding at
# most one pixel, where the two agree.  The rest: tests/keras_reference/test_image_mixing_keras.py.
case("ContrastLimitedAdaptiveHistogramEqualization", dict(tile_grid_size=(2, 2)), (2, 32, 32, 3), range=(0.0, 255.0))
case("ContrastLimitedAdaptiveHistogramEqualization", dict(clip_limit=0.0, tile_grid_size=(3, 2)), (2, 8, 5, 2),
     range=(0.0, 255.0))
case("ContrastLimitedAdaptiveHistogramEqualization", dict(value_range=(0, 1), tile_grid_size=(2, 2)), (1, 16, 16, 1),
     range=(0.0, 1.0))
case("ContrastLimitedAdaptiveHistogramEqualization", dict(value_range=(-1, 1), clip_limit=32.0, tile_grid_size=(2, 3)),
     (2, 8, 12, 3))
# -- geometric augmentations, erasing, RandAugment: the settings that leave nothing to chance (their values for
# the same random numbers are compared with Keras in test_image_geometry_keras.py) ----------------------------
case("RandomShear", {}, (2, 5, 6, 3))  # shear 0 (times a random sign): the identity through the sampler
case("RandomShear", dict(x_factor=(0.0, 0.0), y_factor=0.0, fill_mode="constant", interpolation="nearest",
                         fill_value=2.0), (2, 4, 5, 1))
# scale 0: the corners stay where they are and the homography (solved in float32 by Keras) is the identity
case("RandomPerspective", dict(factor=(1.0, 1.0), scale=0.0), (2, 5, 6, 3), atol=1e-4)
case("RandomPerspective", dict(factor=0.0, interpolation="nearest", fill_value=3.0), (2, 4, 5, 2))
case("RandomElasticTransform", dict(factor=0.0), (2, 6, 6, 3), range=(-10.0, 300.0))
case("RandomElasticTransform", dict(scale=(0.0, 0.0), fill_mode="mirror", value_range=(0, 1)), (2, 6, 6, 1))
# factor 1 and scale 1: every image erased whole
case("RandomErasing", dict(factor=(1.0, 1.0), scale=(1.0, 1.0), fill_value=7.0), (2, 4, 5, 3))
case("RandomErasing", dict(factor=(1.0, 1.0), scale=(1.0, 1.0), fill_value=(1.0, 2.0, 300.0)), (2, 4, 5, 3))
case("RandomErasing", dict(factor=0.0, value_range=(0, 1)), (2, 4, 5, 2))
case("RandAugment", dict(num_ops=0), (2, 5, 6, 3), range=(0.0, 255.0))
case("RandAugment", dict(value_range=(0, 1), num_ops=0, factor=0.3, interpolation="nearest"), (1, 4, 4, 3),
     range=(0.0, 1.0))

# -- audio: STFTSpectrogram (a convolution with STFT-initialized kernels) and MelSpectrogram ----------------
# signal lengths are not multiples of the step, and batch 1 appears, so the last partial frame is exercised
case("STFTSpectrogram", dict(frame_length=16, frame_step=4, fft_length=16), (2, 50, 3), sym=[(None, 3)])
case("STFTSpectrogram", dict(mode="magnitude", frame_length=10, frame_step=3, fft_length=16, window="hamming",
                             periodic=True, padding="same"), (1, 37, 1), sym=[(None, 1)])
case("STFTSpectrogram", dict(mode="psd", frame_length=8, frame_step=8, scaling="spectrum"), (2, 33, 2))
case("STFTSpectrogram", dict(mode="real", frame_length=12, expand_dims=True), (2, 40, 2))
case("STFTSpectrogram", dict(mode="imag", frame_length=9, frame_step=2, fft_length=16, data_format="channels_first",
                             padding="same"), (2, 2, 41), sym=[(2, None)])
case("STFTSpectrogram", dict(mode="angle", frame_length=20, frame_step=7, fft_length=32, window="blackman"),
     (2, 45, 1))
case("STFTSpectrogram", dict(mode="stft", frame_length=8, frame_step=5, window=None, scaling=None,
                             data_format="channels_first", expand_dims=True), (1, 3, 30))
case("STFTSpectrogram", dict(mode="log", frame_length=6, frame_step=2, fft_length=8,
                             window=[0.1, 0.5, 0.9, 1.0, 0.6, 0.2], trainable=False), (2, 23, 2))
# the signal's gradients reach a few hundred in dB per unit and sum many cancelling float32 terms: absolute
# differences of ~1e-4 are rounding (a relative 1e-6 of the largest)
MEL_GRAD = dict(grad_atol=1e-3)
case("MelSpectrogram", dict(fft_length=64, sequence_stride=16, num_mel_bins=8, sampling_rate=8000), (2, 200),
     **MEL_GRAD)
case("MelSpectrogram", dict(fft_length=64, sequence_length=48, sequence_stride=20, window="hamming", num_mel_bins=6,
                            sampling_rate=16000, min_freq=100.0, max_freq=6000.0, power_to_db=False, mag_exp=1.0),
     (1, 130), **MEL_GRAD)
case("MelSpectrogram", dict(fft_length=32, sequence_stride=8, window=None, num_mel_bins=5, sampling_rate=4000,
                            top_db=20.0, ref_power=0.5), (2, 97),
     **MEL_GRAD)
# Keras's compute_output_shape counts (samples + stride + 1) // stride frames, one too many when samples + 1 is a
# multiple of the stride (its call returns 1 + samples // stride, as dlgpu's shape does)
case("MelSpectrogram", dict(fft_length=64, sequence_stride=16, num_mel_bins=8, sampling_rate=8000), (2, 63),
     shape_differs={"keras": (None, 8, 5), "dlgpu": (None, 8, 4)}, **MEL_GRAD)

# -- ReversibleEmbedding: forward (ids to vectors) and reverse (vectors to logits), tied and untied -----------
case("ReversibleEmbedding", dict(input_dim=10, output_dim=4), (3, 5), dtype="int", high=10)
case("ReversibleEmbedding", dict(input_dim=7, output_dim=3, tie_weights=False, mask_zero=True), (2, 4), dtype="int",
     high=7)
case("ReversibleEmbedding", dict(input_dim=10, output_dim=4), (2, 3, 4), call=dict(reverse=True))
case("ReversibleEmbedding", dict(input_dim=6, output_dim=5, tie_weights=False, logit_soft_cap=0.7), (1, 5),
     call=dict(reverse=True))
case("ReversibleEmbedding", dict(input_dim=9, output_dim=3, reverse_dtype="float64"), (2, 3), call=dict(reverse=True))
