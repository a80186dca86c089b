"""ReversibleEmbedding (keras.layers.ReversibleEmbedding): an Embedding that a language model also calls
with ``reverse=True`` to turn hidden states (..., output_dim) back into logits (..., input_dim), through the
transposed embedding table (tie_weights=True) or a reverse_embeddings matrix of its own."""

from __future__ import annotations

import numbers

import numpy as np

from dlgpu import ops
from dlgpu.layers.core import Embedding

_REVERSE_DTYPES = ("float16", "float32", "float64")


class ReversibleEmbedding(Embedding):
    """Embedding(input_dim, output_dim) whose ``call(x, reverse=True)`` is ``x @ embeddings.T`` (or
    ``x @ reverse_embeddings`` when ``tie_weights=False``), optionally soft-capped as
    ``tanh(logits / logit_soft_cap) * logit_soft_cap``; no bias.  Not quantizable: its reverse call would
    need Keras's quantized reverse path, which dlgpu does not have."""

    _quantizable = False

    def __init__(self, input_dim, output_dim, tie_weights=True, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False, reverse_dtype=None,
                 logit_soft_cap=None, **kwargs):
        if kwargs.pop("quantization_config", None) is not None:
            raise NotImplementedError("ReversibleEmbedding: `quantization_config` (quantization) is not supported by "
                                      "dlgpu for this layer.")
        super().__init__(input_dim, output_dim, embeddings_initializer=embeddings_initializer,
                         embeddings_regularizer=embeddings_regularizer, embeddings_constraint=embeddings_constraint,
                         mask_zero=mask_zero, **kwargs)
        self.tie_weights = bool(tie_weights)
        if reverse_dtype is not None:
            name = np.dtype(reverse_dtype).name if str(reverse_dtype) != "bfloat16" else "bfloat16"
            if name not in _REVERSE_DTYPES:
                raise ValueError(f"Layer '{self.name}' (ReversibleEmbedding): `reverse_dtype` must be None or one of "
                                 f"{_REVERSE_DTYPES}; received reverse_dtype={reverse_dtype!r}")
            reverse_dtype = name
        self.reverse_dtype = reverse_dtype
        if logit_soft_cap is not None and (isinstance(logit_soft_cap, bool) or not isinstance(
                logit_soft_cap, numbers.Real) or logit_soft_cap <= 0):
            raise ValueError(f"Layer '{self.name}' (ReversibleEmbedding): `logit_soft_cap` must be None or a positive "
                             f"number; received logit_soft_cap={logit_soft_cap!r}")
        self.logit_soft_cap = logit_soft_cap
        self._reversing = False  # set for the length of a reverse call: its output carries no mask

    def quantize(self, mode=None, type_check=True, config=None):
        from dlgpu.layers import quantized
        mode, config = quantized.resolve_config(mode, config)
        quantized.check_quantize_args(self, mode)
        raise quantized.not_implemented(self, "quantize")

    def build(self, input_shape=None):
        super().build(input_shape)
        if not self.tie_weights:
            self.reverse_embeddings = self.add_weight((self.output_dim, self.input_dim), self.embeddings_initializer,
                                                      name="reverse_embeddings")
        self.built = True

    def __call__(self, *args, **kwargs):
        reverse = kwargs.get("reverse", args[1] if len(args) > 1 else False)
        self._reversing = bool(reverse)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            self._reversing = False

    def call(self, inputs, reverse=False):
        if not reverse:
            return super().call(inputs)
        if inputs.shape[-1:] != (self.output_dim,):
            raise ValueError(f"Layer '{self.name}' (ReversibleEmbedding): a reverse call takes (..., output_dim="
                             f"{self.output_dim}) hidden states; received shape {inputs.shape}")
        if inputs.data.dtype.kind != "f":
            inputs = ops.cast(inputs, self.dtype)
        kernel = ops.transpose(self.embeddings) if self.tie_weights else self.reverse_embeddings
        if self.reverse_dtype is not None:
            inputs, kernel = ops.cast(inputs, self.reverse_dtype), ops.cast(kernel, self.reverse_dtype)
        logits = ops.matmul(inputs, kernel)
        if self.logit_soft_cap is not None:
            cap = self.logit_soft_cap
            logits = ops.multiply(ops.tanh(ops.divide(logits, cap)), cap)
        return logits

    def compute_mask(self, inputs, mask=None):
        # logits have no padding positions: a reverse call drops the mask, as Keras's does
        return None if self._reversing else super().compute_mask(inputs, mask)

    def compute_output_shape(self, input_shape, reverse=False):
        if reverse:
            return tuple(input_shape[:-1]) + (self.input_dim,)
        return tuple(input_shape) + (self.output_dim,)

    def _symbolic_output_shape(self, inputs, shapes, kwargs):
        return self.compute_output_shape(shapes, reverse=bool(kwargs.get("reverse", False)))

    def _output_dtype(self):
        return self.reverse_dtype if self._reversing and self.reverse_dtype else self.dtype

    def get_config(self):
        return {**super().get_config(), "tie_weights": self.tie_weights, "reverse_dtype": self.reverse_dtype,
                "logit_soft_cap": self.logit_soft_cap}
