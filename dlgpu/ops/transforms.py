"""Function transforms: custom_gradient, jvp, vectorize.

custom_gradient: ``f(*args)`` returns ``(output, grad_fn)``; the tape then asks ``grad_fn`` for the gradients
of the (flattened) tensor arguments.  Keras's backends call grad_fn in two ways, and code written for Keras
(the keras.io guides) uses one or the other, or a function that takes both: TF and JAX call
``grad_fn(upstream)`` (``grad_fn(*upstreams)`` for several outputs), torch calls ``grad_fn(*args,
upstream=upstream)``.  dlgpu reads grad_fn's signature: a keyword-only parameter named ``upstream`` (as in
``def grad(*args, upstream=None)``) gets torch's call, anything else the TF/JAX one.  f runs as recorded code,
so when an outer tape asks for a higher-order gradient, grad_fn's own ops (and the tensors it closes over,
which depend on the arguments) are differentiated; a tensor f uses without receiving it (a captured variable)
gets no gradient through the output, as with Keras's torch backend.

jvp: forward mode from two reverse sweeps (the "double vjp" trick): v -> J^T v is linear in v, so the
gradient of <J^T v, t> with respect to v is J t.  It needs the second-order gradients of every op in ``fun``;
an op without them raises its own NotImplementedError naming it.

vectorize: numpy.vectorize's contract, run as a Python loop over the broadcast elements (or over the
core-dimension blocks a ``signature`` names), each call on dlgpu tensors, the results stacked.  It is a
convenience, not a fast path: prefer ops that take whole tensors (or vectorized_map over a batch axis).
"""

from __future__ import annotations

import functools
import inspect
import re

import numpy as np

from dlgpu import tree
from dlgpu.autograd import GradientTape, Tensor, make_result, no_grad

__all__ = ["custom_gradient", "jvp", "vectorize"]


def _torch_style(grad_fn):
    try:
        parameters = inspect.signature(grad_fn).parameters
    except (TypeError, ValueError):
        return False
    upstream = parameters.get("upstream")
    return upstream is not None and upstream.kind is inspect.Parameter.KEYWORD_ONLY


def _call_grad_fn(grad_fn, torch_style, args, upstreams, n_inputs):
    if torch_style:
        grads = grad_fn(*args, upstream=upstreams[0] if len(upstreams) == 1 else tuple(upstreams))
    else:
        grads = grad_fn(*upstreams)
    grads = list(grads) if isinstance(grads, (list, tuple)) else [grads]
    grads = tree.flatten(grads)
    if len(grads) != n_inputs:
        raise ValueError(f"custom_gradient: grad_fn returned {len(grads)} gradient(s) but the function takes "
                         f"{n_inputs} tensor argument(s); return one per (flattened) argument, None for none")
    return grads


def custom_gradient(f):
    """Decorator: ``f(*args)`` returns ``(output, grad_fn)``; the result's gradient is grad_fn's."""
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from dlgpu.ops.symbolic import _has_symbolic
        if _has_symbolic([args, kwargs]):  # a functional graph: the forward's own ops make the nodes
            return f(*args, **kwargs)[0]
        args = tuple(_as_tensors(a) for a in args)
        output, grad_fn = f(*args, **kwargs)
        if grad_fn is None:
            raise ValueError("custom_gradient: the decorated function must return (output, grad_fn); grad_fn is None")
        inputs = [leaf for leaf in tree.flatten(args) if isinstance(leaf, Tensor)]
        outputs = tree.flatten(output)
        if not all(isinstance(o, Tensor) for o in outputs):
            raise TypeError(f"custom_gradient: the output must be a tensor or a structure of tensors; received "
                            f"{[type(o).__name__ for o in outputs]}")
        torch_style = _torch_style(grad_fn)
        # One node per output, each with the inputs as parents; a gradient reaching several outputs calls
        # grad_fn once per output with zeros as the other upstreams (the sum is what one call would give,
        # grad_fn being linear in its upstreams).
        results = []
        for k, o in enumerate(outputs):
            def backward(g, k=k):
                upstreams = [Tensor(g, dtype=g.dtype) if j == k else Tensor(o2.data * 0, dtype=o2.data.dtype)
                             for j, o2 in enumerate(outputs)]
                with no_grad():
                    grads = _call_grad_fn(grad_fn, torch_style, args, upstreams, len(inputs))
                return tuple(None if gr is None else _as_array(gr, x) for gr, x in zip(grads, inputs))

            def vjp(out, g, k=k):
                from dlgpu.ops.shape import zeros_like
                upstreams = [g if j == k else zeros_like(o2) for j, o2 in enumerate(outputs)]
                grads = _call_grad_fn(grad_fn, torch_style, args, upstreams, len(inputs))
                return tuple(None if gr is None else _as_tensor(gr) for gr in grads)
            results.append(make_result(o.data, tuple(inputs), backward, vjp))
        return tree.pack_sequence_as(output, results)
    return wrapper


def _as_tensors(value):
    if isinstance(value, (Tensor, list, tuple, dict)) or not hasattr(value, "shape"):
        return value
    from dlgpu.ops.shape import convert_to_tensor
    return convert_to_tensor(value)


def _as_array(grad, like):
    data = grad.data if isinstance(grad, Tensor) else like.data.dtype.type(grad) if np.isscalar(grad) else grad
    xp_like = type(like.data)
    if not isinstance(data, xp_like) and not isinstance(data, np.generic):
        data = np.asarray(data)
    if getattr(data, "shape", None) != like.data.shape:
        data = (data + like.data * 0).astype(like.data.dtype)  # a broadcast scalar or row
    return data


def _as_tensor(grad):
    from dlgpu.ops.shape import convert_to_tensor
    return grad if isinstance(grad, Tensor) else convert_to_tensor(grad)


def jvp(fun, primals, tangents, has_aux=False):
    """(fun(*primals), J tangents), or with ``has_aux`` (output, J tangents, aux) where fun returns
    (output, aux).  Forward mode by two reverse sweeps; see the module docstring."""
    from dlgpu.ops.math import multiply
    from dlgpu.ops.reduce import sum as sum_
    from dlgpu.ops.shape import convert_to_tensor, zeros_like
    if not isinstance(primals, (list, tuple)) or not isinstance(tangents, (list, tuple)):
        raise TypeError(f"jvp: primals and tangents must be tuples or lists; received "
                        f"{type(primals).__name__} and {type(tangents).__name__}")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primal(s) but {len(tangents)} tangent(s)")
    primals = [p if isinstance(p, Tensor) else convert_to_tensor(p) for p in primals]
    tangents = [t if isinstance(t, Tensor) else convert_to_tensor(t) for t in tangents]
    for p, t in zip(primals, tangents):
        if p.shape != t.shape:
            raise ValueError(f"jvp: a tangent of shape {t.shape} for a primal of shape {p.shape}")
    primals = [Tensor(p.data, dtype=p.data.dtype) for p in primals]  # fresh leaves, watched by these tapes only
    with GradientTape(persistent=True) as outer:
        with GradientTape(persistent=True) as inner:
            inner.watch(primals)
            result = fun(*primals)
            out, aux = result if has_aux else (result, None)
        outs = tree.flatten(out)
        cotangents = [zeros_like(o) if o.data.dtype.kind in "fc" else None for o in outs]
        live = [(o, v) for o, v in zip(outs, cotangents) if v is not None]
        outer.watch([v for _, v in live])
        # recorded by outer: the first sweep's gradients as functions of the cotangents
        pulled = inner.gradient([o for o, _ in live], primals, output_gradients=[v for _, v in live])
        pairing = None
        for g, t in zip(pulled, tangents):
            if g is None:
                continue
            term = sum_(multiply(g, t))
            pairing = term if pairing is None else pairing + term
    if pairing is None:
        pushed = [zeros_like(o) for o in outs]
    else:
        grads = outer.gradient(pairing, [v for _, v in live], unconnected_gradients="zero")
        pushed_iter = iter(grads)
        pushed = [next(pushed_iter) if v is not None else zeros_like(o) for o, v in zip(outs, cotangents)]
    primal_out = tree.pack_sequence_as(out, [Tensor(o.data, dtype=o.data.dtype) for o in outs])
    tangent_out = tree.pack_sequence_as(out, [Tensor(t.data, dtype=t.data.dtype) for t in pushed])
    return (primal_out, tangent_out, aux) if has_aux else (primal_out, tangent_out)


_DIMS = r"\(\s*(?:\w+(?:\s*,\s*\w+)*)?\s*\)"
_SIGNATURE = re.compile(rf"^{_DIMS}(?:\s*,\s*{_DIMS})*\s*->\s*{_DIMS}$")


def _parse_signature(signature):
    if not _SIGNATURE.match(signature):
        raise ValueError(f"vectorize: signature must look like '(n),(n)->()'; received {signature!r}")
    left, right = signature.split("->")
    parse = lambda side: [tuple(d for d in re.split(r"\s*,\s*", g.strip()) if d)  # noqa: E731
                          for g in re.findall(r"\(([^)]*)\)", side)]
    outs = parse(right)
    if len(outs) != 1:
        raise NotImplementedError("vectorize: signatures with several outputs are not supported")
    return parse(left), outs[0]


def vectorize(pyfunc, *, excluded=None, signature=None):
    """numpy.vectorize for dlgpu tensors: ``pyfunc`` called once per broadcast element (or per core block of
    ``signature``), in a Python loop, the results stacked into one tensor.  ``excluded``: positions or names
    of arguments passed through unchanged."""
    excluded = set(excluded or ())
    core = _parse_signature(signature) if signature is not None else None

    @functools.wraps(pyfunc)
    def wrapper(*args, **kwargs):
        from dlgpu.ops.shape import broadcast_to, convert_to_tensor, reshape, stack
        positions = [i for i in range(len(args)) if i not in excluded]
        names = [k for k in kwargs if k not in excluded]
        tensors = [convert_to_tensor(args[i]) for i in positions] + [convert_to_tensor(kwargs[k]) for k in names]
        core_dims = core[0] if core is not None else [()] * len(tensors)
        if len(core_dims) != len(tensors):
            raise ValueError(f"vectorize: signature {signature!r} names {len(core_dims)} input(s) but the call "
                             f"passes {len(tensors)} vectorized argument(s)")
        loop_shapes = []
        for t, dims in zip(tensors, core_dims):
            if t.ndim < len(dims):
                raise ValueError(f"vectorize: an argument of shape {t.shape} has fewer axes than its core "
                                 f"dimensions {dims} in {signature!r}")
            loop_shapes.append(t.shape[:t.ndim - len(dims)])
        loop = np.broadcast_shapes(*loop_shapes) if loop_shapes else ()
        expanded = [broadcast_to(t, loop + t.shape[t.ndim - len(d):]) for t, d in zip(tensors, core_dims)]
        flat = [reshape(t, (-1,) + t.shape[len(loop):]) for t in expanded]
        count = int(np.prod(loop)) if loop else 1
        results = []
        for i in range(count):
            call_args, call_kwargs = list(args), dict(kwargs)
            pieces = [f[i] for f in flat]
            for j, pos in enumerate(positions):
                call_args[pos] = pieces[j]
            for j, name in enumerate(names):
                call_kwargs[name] = pieces[len(positions) + j]
            results.append(convert_to_tensor(pyfunc(*call_args, **call_kwargs)))
        if not results:
            raise ValueError("vectorize: the broadcast arguments are empty; there is no call to take the "
                             "output's shape and dtype from")
        out = stack(results, axis=0)
        return reshape(out, loop + out.shape[1:])
    return wrapper
