"""The Layer API a user's own layer relies on, program for program against Keras 3."""

import numpy as np

import dlgpu


def _custom_layer_program(lib):
    class Scale(lib.layers.Layer):
        def __init__(self, units=2, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones")
            self.steps = self.add_variable((self.units,), initializer="zeros", trainable=False)

        def call(self, x):
            return lib.ops.matmul(x, self.w)
    lib.backend.clear_session()
    layer = Scale()
    layer(np.ones((2, 3), "float32"))
    spec = layer.compute_output_spec(lib.KerasTensor((None, 3)))
    return {"weights": [(w.name, w.path, tuple(w.shape), w.trainable) for w in layer.weights],
            "spec": (tuple(spec.shape), str(spec.dtype)), "count": layer.count_params(),
            "config": {k: v for k, v in layer.get_config().items() if k in ("units", "trainable")},
            "symbolic": tuple(layer(lib.Input((3,))).shape)}


def test_custom_layer_api_as_keras(keras):
    assert _custom_layer_program(dlgpu) == _custom_layer_program(keras)


def test_compute_output_spec_records_no_call():
    dense = dlgpu.layers.Dense(4)
    spec = dense.compute_output_spec(np.ones((2, 5, 3), "float32"))
    assert spec.shape == (2, 5, 4) and not dense._inbound_nodes
    inputs = dlgpu.Input((3,))
    model = dlgpu.Model(inputs, dense(inputs))
    assert [l.name for l in model.layers][-1] == dense.name and len(dense._inbound_nodes) == 1
