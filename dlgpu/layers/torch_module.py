"""TorchModuleWrapper (keras.layers.TorchModuleWrapper): a torch.nn.Module as a dlgpu layer.

The module's parameters become the layer's trainable variables and its buffers (BatchNorm's running
statistics) its non-trainable ones, so dlgpu's optimizers, saving of weights and StatelessScope see them.
dlgpu owns the memory: each call hands the module torch views of the variables' current arrays (zero-copy:
``torch.from_numpy`` on the CPU, DLPack for CuPy arrays on the GPU) through ``torch.func.functional_call``,
so an optimizer step, a load_weights or a stateless_call is what the module computes with next, and a
buffer the module updates in place (running statistics in training) is updated in the variable.

The call runs in torch, recorded by torch's autograd when a dlgpu tape is recording; the dlgpu node of each
output asks ``torch.autograd.grad`` for the gradients of the tracked inputs and variables.  Second-order
gradients through the module are not supported (its gradient is computed by torch, outside dlgpu's graph).

A torch module is code: dlgpu never saves code (Keras pickles the module with torch.save), so a model
holding one is saved with ``save_weights`` (dlgpu's format: Keras writes the module's state_dict keys, a
layout not mapped here) and rebuilt in Python; ``get_config`` says so.
"""

from __future__ import annotations

import numpy as np

from dlgpu.autograd import Tensor, is_recording, make_result
from dlgpu.backend import device as _device
from dlgpu.layers.base import Layer


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("TorchModuleWrapper needs PyTorch: pip install torch") from None
    return torch


class TorchModuleWrapper(Layer):
    """``TorchModuleWrapper(module, name=None, output_shape=None)``: calls ``module(*args, **kwargs)`` on dlgpu
    tensors; ``output_shape`` spares the symbolic call a run of the module to learn it."""

    _accepts_integer_inputs = True  # token ids for an nn.Embedding stay integers

    def __init__(self, module, name=None, output_shape=None, **kwargs):
        super().__init__(name=name, **kwargs)
        torch = _torch()
        if not isinstance(module, torch.nn.Module):
            raise ValueError(f"TorchModuleWrapper: `module` must be a torch.nn.Module; received "
                             f"{type(module).__name__}")
        if isinstance(module, torch.nn.modules.lazy.LazyModuleMixin) and module.has_uninitialized_params():
            raise ValueError(f"LazyModules are not supported unless they are already initialized. Received "
                             f"uninitialized LazyModule: module={module}")
        device = _device.get_device()
        self.module = module.to("cuda" if device.kind == "gpu" else "cpu")
        self.output_shape = None if output_shape is None else tuple(output_shape)
        self._names = []  # the module's parameter and buffer names, in the variables' order
        with self._open_name_scope():
            for name, tensor, trainable in self._module_state():
                value = tensor.detach().cpu().numpy().copy()
                variable = self.add_weight(value.shape, lambda shape, dtype, v=value: v, dtype=value.dtype,
                                           trainable=trainable, name=name.replace(".", "_"))
                # the module's own tensors become views of the variable, so module(x) called directly (or
                # module.parameters()) sees what dlgpu trains, as long as the variable keeps its array
                tensor.data = _as_torch(torch, variable.data)
                self._names.append(name)
        self.built = True

    def _module_state(self):
        for name, parameter in self.module.named_parameters():
            yield name, parameter, parameter.requires_grad
        for name, buffer in self.module.named_buffers():
            if buffer.is_floating_point() or buffer.dtype in (_torch().int64, _torch().int32):
                yield name, buffer, False

    def parameters(self, recurse=True):
        return self.module.parameters(recurse=recurse)

    def compute_output_shape(self, input_shape):
        if self.output_shape is not None:
            return self.output_shape
        return super().compute_output_shape(input_shape)

    def call(self, *args, training=None, **kwargs):
        torch = _torch()
        self.module.train(training is not False)  # as Keras: eval() only when training is False
        variables = list(self._tracked_variables)  # the module's state, in self._names order
        record = is_recording()
        sources = []  # (dlgpu tensor, its torch view) pairs the gradient goes to

        def to_torch(value):
            if isinstance(value, (list, tuple)):
                return type(value)(to_torch(v) for v in value)
            if isinstance(value, dict):
                return {k: to_torch(v) for k, v in value.items()}
            if isinstance(value, Tensor):
                view = _as_torch(torch, value.data)
                if record and value._tracked and view.is_floating_point():
                    view.requires_grad_(True)
                    sources.append((value, view))
                return view
            if isinstance(value, np.ndarray):
                return _as_torch(torch, value)
            return value
        state = {}
        for name, variable in zip(self._names, variables):
            view = _as_torch(torch, variable.data)
            if record and variable._tracked and view.is_floating_point():
                view.requires_grad_(True)
                sources.append((variable, view))
            state[name] = view
        torch_args, torch_kwargs = to_torch(list(args)), to_torch(kwargs)
        with torch.set_grad_enabled(bool(sources)):
            output = torch.func.functional_call(self.module, state, tuple(torch_args), torch_kwargs)
        return _from_torch(torch, output, sources)

    def get_config(self):
        raise NotImplementedError(
            f"TorchModuleWrapper '{self.name}': a torch module is code, which dlgpu never saves (Keras pickles it "
            f"with torch.save), so no config can be written for it; model.save_weights writes the weights (in "
            f"dlgpu's format), for load_weights into the model built again in Python.")


def _as_torch(torch, array):
    """A torch view of a numpy or CuPy array (no copy)."""
    if isinstance(array, np.ndarray):
        if not array.flags.writeable or not array.flags.c_contiguous:
            array = np.ascontiguousarray(array).copy()
        return torch.from_numpy(array)
    return torch.from_dlpack(array)


def _from_torch(torch, output, sources):
    if isinstance(output, (list, tuple)):
        return type(output)(_from_torch(torch, o, sources) for o in output)
    if isinstance(output, dict):
        return {k: _from_torch(torch, o, sources) for k, o in output.items()}
    if not isinstance(output, torch.Tensor):
        return output
    data = output.detach()
    data = data.numpy() if data.device.type == "cpu" else _cupy_from_torch(data)
    if not sources or not output.requires_grad:
        return Tensor(data, dtype=data.dtype)
    parents = tuple(t for t, _ in sources)
    views = [v for _, v in sources]

    def backward(g):
        upstream = _as_torch(torch, g).to(output.dtype)
        grads = torch.autograd.grad(output, views, grad_outputs=upstream, retain_graph=True, allow_unused=True)
        return tuple(None if gr is None else (gr.numpy() if gr.device.type == "cpu" else _cupy_from_torch(gr))
                     for gr in grads)
    return make_result(data, parents, backward)


def _cupy_from_torch(tensor):
    import cupy
    return cupy.from_dlpack(tensor)


__all__ = ["TorchModuleWrapper"]
