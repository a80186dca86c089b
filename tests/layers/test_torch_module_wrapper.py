"""keras.layers.TorchModuleWrapper (dlgpu/layers/torch_module.py): a torch.nn.Module as a dlgpu layer, its
parameters and buffers dlgpu variables; values and gradients against the module run by torch itself."""

import numpy as np
import pytest

import dlgpu
import dlgpu as keras
from dlgpu import layers, ops

torch = pytest.importorskip("torch")


def _module(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                               torch.nn.Dropout(0.0), torch.nn.Linear(8, 2))


def _x(shape=(5, 4)):
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def test_outputs_gradients_and_running_statistics_match_torch():
    wrapper, reference = layers.TorchModuleWrapper(_module()), _module()
    names = [v.name for v in wrapper.weights]
    assert names[:6] == ["0_weight", "0_bias", "1_weight", "1_bias", "4_weight", "4_bias"]
    assert [v.name for v in wrapper.non_trainable_variables] == ["1_running_mean", "1_running_var",
                                                                 "1_num_batches_tracked"]
    x = _x()
    with keras.GradientTape() as tape:
        xt = ops.convert_to_tensor(x)
        tape.watch(xt)
        y = wrapper(xt, training=True)
        loss = ops.sum(y * y)
    grads = tape.gradient(loss, [xt] + wrapper.trainable_variables)
    x_ref = torch.from_numpy(x.copy()).requires_grad_(True)
    reference.train()
    y_ref = reference(x_ref)
    (y_ref ** 2).sum().backward()
    np.testing.assert_allclose(keras.to_numpy(y), y_ref.detach().numpy(), rtol=1e-6, atol=1e-7)
    expected = [x_ref.grad] + [p.grad for p in reference.parameters()]
    for got, want in zip(grads, expected):
        np.testing.assert_allclose(keras.to_numpy(got), want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(wrapper.non_trainable_variables[0].numpy(), reference[1].running_mean.numpy(),
                               rtol=1e-6)
    assert int(wrapper.non_trainable_variables[2].numpy()) == 1
    # training=False runs the module in eval mode: the running statistics normalize
    reference.eval()
    np.testing.assert_allclose(keras.to_numpy(wrapper(x, training=False)), reference(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_fit_trains_the_module_in_a_functional_model_and_weights_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    module = _module()
    inputs = keras.Input((4,))
    wrapped = layers.TorchModuleWrapper(module, output_shape=(None, 2))
    outputs = layers.Dense(1)(ops.relu(wrapped(inputs)))
    model = keras.Model(inputs, outputs)
    assert model.output_shape == (None, 1)
    x, y = _x((64, 4)), np.random.default_rng(1).normal(size=(64, 1)).astype(np.float32)
    model.compile(keras.optimizers.Adam(0.02), "mse")
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0).history["loss"]
    assert history[-1] < history[0]
    # the module's own parameters are the variables: calling it directly gives what the model computes
    module.eval()
    direct = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(keras.to_numpy(wrapped(x, training=False)), direct, rtol=1e-5, atol=1e-6)

    path = str(tmp_path / "with_torch.weights.h5")
    with pytest.warns(UserWarning, match="no config can be written"):
        model.save_weights(path)  # in dlgpu's format
    inputs2 = keras.Input((4,))
    again = keras.Model(inputs2, layers.Dense(1)(ops.relu(layers.TorchModuleWrapper(_module(seed=5))(inputs2))))
    again.load_weights(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(NotImplementedError, match="never saves"), pytest.warns(UserWarning):
        model.save(str(tmp_path / "m.keras"))


def test_integer_inputs_stateless_call_and_refusals():
    torch.manual_seed(0)
    embedding = layers.TorchModuleWrapper(torch.nn.Embedding(10, 3))
    ids = np.array([[1, 2], [9, 0]], np.int64)
    np.testing.assert_allclose(keras.to_numpy(embedding(ids)), embedding.weights[0].numpy()[ids], rtol=1e-6)

    wrapper = layers.TorchModuleWrapper(torch.nn.Linear(3, 2))
    kernel, bias = np.ones((2, 3), np.float32), np.array([0.5, -0.5], np.float32)
    out, _ = wrapper.stateless_call([kernel, bias], [], np.eye(3, dtype=np.float32))
    np.testing.assert_allclose(keras.to_numpy(out), np.eye(3) @ kernel.T + bias, rtol=1e-6)
    assert not np.array_equal(wrapper.weights[0].numpy(), kernel)

    with pytest.raises(ValueError, match="must be a torch.nn.Module"):
        layers.TorchModuleWrapper(lambda x: x)
    with pytest.raises(ValueError, match="LazyModules are not supported"):
        layers.TorchModuleWrapper(torch.nn.LazyLinear(3))


@pytest.mark.gpu
def test_the_wrapper_on_the_gpu_matches_the_cpu():
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA here: the GPU path hands torch CuPy arrays through DLPack")
    x = _x()
    cpu = layers.TorchModuleWrapper(_module())
    with dlgpu.device("gpu"):
        gpu = layers.TorchModuleWrapper(_module())
        with keras.GradientTape() as tape:
            y = gpu(x, training=True)
            loss = ops.sum(y * y)
        grads = tape.gradient(loss, gpu.trainable_variables)
        assert y.device.kind == "gpu"
    with keras.GradientTape() as tape:
        y_cpu = cpu(x, training=True)
        loss_cpu = ops.sum(y_cpu * y_cpu)
    grads_cpu = tape.gradient(loss_cpu, cpu.trainable_variables)
    np.testing.assert_allclose(keras.to_numpy(y), keras.to_numpy(y_cpu), rtol=1e-4, atol=1e-5)
    for a, b in zip(grads, grads_cpu):
        np.testing.assert_allclose(keras.to_numpy(a), keras.to_numpy(b), rtol=1e-4, atol=1e-5)
