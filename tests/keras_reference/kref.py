"""Shared machinery: run one layer in Keras (torch backend) and in dlgpu with the same weights and compare."""

import numpy as np

import dlgpu


def rand(shape, seed=0, dtype="float32", low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)


def _call(layer, xs, call_kwargs, positional):
    if positional:
        return layer(*xs, **call_kwargs)
    return layer(xs if len(xs) > 1 else xs[0], **call_kwargs)


def keras_forward_and_grads(layer, inputs, call_kwargs, positional=False):
    """Keras output and gradients of sum(out**2) w.r.t. each float input and each trainable weight (torch autograd)."""
    import torch
    xs = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in inputs]
    with torch.enable_grad():
        out = _call(layer, xs, call_kwargs, positional)
        outs = out if isinstance(out, (list, tuple)) else [out]
        loss = sum((o.float() ** 2).sum() for o in outs)
        weights = [w.value for w in layer.trainable_weights]
        wanted = [x for x in xs if x.requires_grad] + weights
        grads = torch.autograd.grad(loss, wanted, allow_unused=True) if loss.requires_grad else [None] * len(wanted)
    to_np = lambda t: None if t is None else t.detach().cpu().numpy()  # noqa: E731
    return [to_np(o) for o in outs], [to_np(g) for g in grads]


def dlgpu_forward_and_grads(layer, inputs, call_kwargs, positional=False):
    xs = [dlgpu.Tensor(a) for a in inputs]
    floats = [x for x, a in zip(xs, inputs) if a.dtype.kind == "f"]
    with dlgpu.GradientTape() as tape:
        tape.watch(floats)
        out = _call(layer, xs, call_kwargs, positional)
        outs = out if isinstance(out, (list, tuple)) else [out]
        loss = None
        for o in outs:
            term = dlgpu.ops.sum(dlgpu.ops.square(dlgpu.ops.cast(o, "float32")))
            loss = term if loss is None else loss + term
    wanted = floats + list(layer.trainable_weights)
    grads = tape.gradient(loss, wanted) if wanted else []
    to_np = lambda t: None if t is None else np.asarray(t.numpy() if hasattr(t, "numpy") else t)  # noqa: E731
    return [to_np(o) for o in outs], [to_np(g) for g in grads]


def plain(v):
    """Config values in one comparable form: tuples as lists, numpy scalars as Python ones."""
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    return v


def _comparable(v, skip, nested_skip):
    """Nested configs without the keys that legitimately differ (auto-generated names, and per class
    ``nested_skip[class_name]``).  The dtype entries are compared: dlgpu writes Keras's policy dicts."""
    v = plain(v)
    if isinstance(v, dict):
        if "class_name" in v and "config" in v:  # a serialized object: its class and its own config
            inner = skip + tuple(nested_skip.get(v["class_name"], ()))
            if v["class_name"] == "DTypePolicy":  # its "name" is the policy, not an auto-generated name
                inner = ()
            return (v["class_name"], _comparable(v["config"], inner, nested_skip))
        return {k: _comparable(x, skip, nested_skip) for k, x in v.items() if k not in skip}
    if isinstance(v, list):
        return [_comparable(x, skip, nested_skip) for x in v]
    return v


def config_diff(kcfg, dcfg, skip=("name",), nested_skip=None):
    """(keys only in Keras, keys only in dlgpu, {key: (keras value, dlgpu value)} for differing values)."""
    konly = sorted(set(kcfg) - set(dcfg))
    donly = sorted(set(dcfg) - set(kcfg))
    values = {}
    for k in sorted(set(kcfg) & set(dcfg)):
        if k in skip:
            continue
        a, b = _comparable(kcfg[k], skip, nested_skip or {}), _comparable(dcfg[k], skip, nested_skip or {})
        if a != b:
            values[k] = (a, b)
    return konly, donly, values


def make_layer(module, name, kwargs):
    """Construct ``module.<name>(**kwargs)``; a wrapped layer is given as (class name, kwargs), a Pipeline's
    layers as a list of those."""
    kwargs = dict(kwargs)
    if isinstance(kwargs.get("layer"), tuple):
        inner, inner_kwargs = kwargs["layer"]
        kwargs["layer"] = getattr(module.layers, inner)(**inner_kwargs)
    if isinstance(kwargs.get("layers"), list):  # Pipeline: a list of (class name, kwargs)
        kwargs["layers"] = [getattr(module.layers, inner)(**inner_kwargs) for inner, inner_kwargs in kwargs["layers"]]
    return getattr(module.layers if hasattr(module, "layers") else module, name)(**kwargs)


def make_inputs(shapes, opts, seed=0):
    out = []
    for i, s in enumerate(shapes):
        if opts.get("dtype") == "int":
            out.append(np.random.default_rng(seed + i).integers(0, opts.get("high", 10), size=s).astype("int32"))
        else:
            out.append(rand(s, seed=seed + i, **dict(zip(("low", "high"), opts.get("range", (-1.0, 1.0))))))
    return out


def randomize_weights(klayer):
    """Non-trivial values for every float weight (zero biases and unit variances hide ordering mistakes)."""
    rng = np.random.default_rng(1)
    new = []
    for v, w in zip(klayer.weights, klayer.get_weights()):
        if w.dtype.kind != "f":
            new.append(w)
        elif "variance" in v.path:
            new.append(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))
        else:
            new.append(rng.uniform(-0.5, 0.5, w.shape).astype(w.dtype))
    klayer.set_weights(new)
