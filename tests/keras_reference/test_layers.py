"""Every layer class that both Keras and dlgpu have, run side by side: Keras's weights copied into dlgpu, then
outputs, gradients of sum(out**2) w.r.t. inputs and weights, state after a training call, get_config (both
directions of from_config), compute_output_shape and symbolic shapes with unknown dimensions compared."""

import numpy as np
import pytest

import dlgpu

from .kref import (_call, config_diff, dlgpu_forward_and_grads, keras_forward_and_grads, make_inputs, make_layer,
                  plain, rand, randomize_weights)
from .layer_cases import C

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # Keras's variables on numpy 2
              pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`:UserWarning")]

# Config keys dlgpu writes and Keras does not; each is a deliberate choice, Keras loads the config either way.
DLGPU_ONLY_KEYS = {
    # Keras's Dense.get_config drops the base layer's activity_regularizer (a round trip through Keras loses it)
    "Dense": {"activity_regularizer"},
    # Keras's SimpleRNN takes `seed` (recurrent dropout) but does not write it, unlike its LSTM and GRU
    "SimpleRNN": {"seed"},
    # Keras's CategoryEncoding takes `sparse` but does not write it
    "CategoryEncoding": {"sparse"},
    # Keras's RandomGrayscale takes `seed` but does not write it (its other random layers do)
    "RandomGrayscale": {"seed"},
}
# Config values that differ; equivalent meaning.
DIFFERENT_VALUES = {
    # Keras writes the axes it resolved at build ([1] for rank-3 inputs); dlgpu keeps None, which means the same
    "MultiHeadAttention": {"attention_axes"},
}

# Classes in both namespaces that the table does not run, and why.
NOT_IN_TABLE = {
    "Input": "a function returning a symbolic tensor; InputLayer is its layer",
    "InputLayer": "no computation; symbolic shapes of every layer below go through it",
    "InputSpec": "not a layer",
    "Layer": "the base class",
    "Lambda": "wraps a callable; nothing to compare beyond the callable",
    "TorchModuleWrapper": "wraps a torch module; compared with the module run by torch itself in "
                          "tests/layers/test_torch_module_wrapper.py",
    "RNN": "generic wrapper of cells; its LSTM/GRU/SimpleRNN subclasses are compared",
    "GRUCell": "compared through GRU",
    "LSTMCell": "compared through LSTM",
    "SimpleRNNCell": "compared through SimpleRNN",
    "StackedRNNCells": "wrapper of cells",
    "Wrapper": "the abstract base of TimeDistributed and SpectralNormalization (compared through them)",
    "Hashing": "Keras's Hashing needs TensorFlow (not installed with the torch backend); its bins are checked "
               "against Keras's docstring examples in tests/layers/test_hashed_crossing.py",
    "HashedCrossing": "Keras's HashedCrossing needs TensorFlow; its bins are checked against Keras's docstring "
                      "and TensorFlow's sparse_cross tests in tests/layers/test_hashed_crossing.py",
    "IntegerLookup": "Keras's IntegerLookup needs TensorFlow",
    "StringLookup": "Keras's StringLookup needs TensorFlow",
    "TextVectorization": "Keras's TextVectorization needs TensorFlow",
    "MaxNumBoundingBoxes": "takes dicts of bounding boxes; compared in test_image_boxes_keras.py",
    "RandomBrightness": "random", "RandomContrast": "random", "RandomCrop": "random", "RandomFlip": "random",
    "RandomRotation": "random", "RandomTranslation": "random", "RandomZoom": "random",
    "MixUp": "random: Keras's transform_images/transform_labels replay dlgpu's draws in test_image_mixing_keras.py",
    "CutMix": "random: Keras's transform_images/transform_labels replay dlgpu's draws in test_image_mixing_keras.py",
    "AugMix": "random: Keras's transform_images replays dlgpu's chains in test_image_mixing_keras.py",
}


def _ids():
    seen = {}
    out = []
    for name, kwargs, shapes, opts in C:
        seen[name] = seen.get(name, 0) + 1
        out.append(f"{name}-{seen[name]}")
    return out


def _both(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - the comparison reports what failed
        return f"raised {type(e).__name__}"


@pytest.mark.parametrize("name,kwargs,shapes,opts", C, ids=_ids())
def test_layer_matches_keras(keras, name, kwargs, shapes, opts):
    import torch
    positional = opts.get("positional", False)
    call = opts.get("call", {})
    xs = make_inputs(shapes, opts)
    kl, dl = make_layer(keras, name, kwargs), make_layer(dlgpu, name, kwargs)
    _call(kl, [torch.tensor(a) for a in xs], call, positional)
    randomize_weights(kl)
    _call(dl, [dlgpu.Tensor(a) for a in xs], call, positional)

    # the same weights in the same order and shapes (set_weights checks the shapes)
    kweights = kl.get_weights()
    assert [w.shape for w in kweights] == [tuple(v.shape) for v in dl.weights], (
        [v.path for v in kl.weights], [v.path for v in dl.weights])
    dl.set_weights(kweights)

    for training in ([False, True] if opts.get("train") else [False]):
        kwargs_call = dict(call, training=True) if training else call
        kout, kgrads = keras_forward_and_grads(kl, xs, kwargs_call, positional)
        dout, dgrads = dlgpu_forward_and_grads(dl, xs, kwargs_call, positional)
        assert len(kout) == len(dout)
        for a, b in zip(kout, dout):
            assert a.shape == b.shape
            if opts.get("keras_torch_bug"):
                assert not np.allclose(a, b, rtol=1e-3), "Keras's torch backend fixed its same-padding average?"
            else:
                np.testing.assert_allclose(b, a, rtol=opts.get("rtol", 1e-5), atol=opts.get("atol", 1e-5))
        if not opts.get("no_grad") and not opts.get("keras_torch_bug"):
            assert len(kgrads) == len(dgrads)
            for i, (a, b) in enumerate(zip(kgrads, dgrads)):
                assert (a is None) == (b is None), f"gradient {i}"
                if a is not None:
                    np.testing.assert_allclose(b, a, rtol=1e-4, atol=opts.get("grad_atol", 1e-5),
                                               err_msg=f"gradient {i}")
    for a, b in zip(kl.get_weights(), dl.get_weights()):  # moving statistics after the training call
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)

    # configs: the same keys and values (less the documented differences), and each loads the other's
    kcfg, dcfg = kl.get_config(), dl.get_config()
    konly, donly, values = config_diff(kcfg, dcfg, nested_skip=DLGPU_ONLY_KEYS)
    assert konly == []
    assert set(donly) == DLGPU_ONLY_KEYS.get(name, set())
    assert set(values) <= DIFFERENT_VALUES.get(name, set()), values
    type(dl).from_config(kcfg)
    type(kl).from_config(dcfg)

    # shapes with unknown dimensions: compute_output_shape and a symbolic call
    sym = [(None,) + tuple(s) for s in (opts.get("sym") or [s[1:] for s in shapes])]
    arg = sym if len(sym) > 1 else sym[0]
    if opts.get("keras_no_output_shape"):  # Keras's class has no compute_output_shape: dlgpu's against the call
        kshape = None
    else:
        kshape = kl.compute_output_shape(*sym) if positional else kl.compute_output_shape(arg)
    dshape = dl.compute_output_shape(*sym) if positional else dl.compute_output_shape(arg)
    dtype = "int32" if opts.get("dtype") == "int" else "float32"
    kin = [keras.Input(batch_shape=s, dtype=dtype) for s in sym]
    din = [dlgpu.Input(batch_shape=s, dtype=dtype) for s in sym]
    ksym = _call(make_layer(keras, name, kwargs), kin, call, positional)
    dsym = _call(make_layer(dlgpu, name, kwargs), din, call, positional)
    ksym = [tuple(t.shape) for t in (ksym if isinstance(ksym, (list, tuple)) else [ksym])]
    dsym = [tuple(t.shape) for t in (dsym if isinstance(dsym, (list, tuple)) else [dsym])]
    if "shape_differs" in opts:
        assert plain(kshape) == list(opts["shape_differs"]["keras"]) == plain(ksym[0])
        assert plain(dshape) == list(opts["shape_differs"]["dlgpu"]) == plain(dsym[0])
    elif kshape is None:
        assert ksym == dsym == [tuple(dshape)]
    else:
        assert plain(kshape) == plain(dshape)
        assert ksym == dsym


# Classes the .keras round trip below does not run, and why.
NOT_IN_FILES = {
    # Keras cannot build a functional model around its Equalization (the symbolic call hands back its input
    # tensor: "part of a cycle"), so neither library can write or read such a file
    "Equalization",
}


@pytest.mark.parametrize("name,kwargs,shapes,opts", C, ids=_ids())
def test_layer_in_keras_files_both_ways(keras, tmp_path, name, kwargs, shapes, opts):
    """A one-layer functional model written as .keras by each library and read by the other predicts the
    same: configs, node arguments and the weights' places in the file agree."""
    if name in NOT_IN_FILES or opts.get("keras_torch_bug"):
        pytest.skip("see NOT_IN_FILES" if name in NOT_IN_FILES else "Keras-torch computes another value (see case)")
    xs = make_inputs(shapes, opts)
    x = xs if len(xs) > 1 else xs[0]
    dtype = "int32" if opts.get("dtype") == "int" else "float32"
    for writer, reader in ((keras, dlgpu), (dlgpu, keras)):
        inputs = [writer.Input(s[1:], dtype=dtype) for s in shapes]
        out = _call(make_layer(writer, name, kwargs), inputs, opts.get("call", {}), opts.get("positional", False))
        model = writer.Model(inputs if len(inputs) > 1 else inputs[0], out)
        rng = np.random.default_rng(1)
        model.set_weights([(rng.random(w.shape) + 0.5).astype(w.dtype) for w in model.get_weights()])
        path = tmp_path / f"{writer.__name__}.keras"
        model.save(path)
        expected, got = model.predict(x, verbose=0), reader.saving.load_model(path).predict(x, verbose=0)
        for e, g in zip(*(v if isinstance(v, (list, tuple)) else [v] for v in (expected, got))):
            np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-4, atol=1e-4,
                                       err_msg=f"written by {writer.__name__}")


def test_every_common_layer_class_is_compared(keras):
    """A layer class new in either library shows up here instead of going unchecked."""
    common = {n for n in dir(keras.layers) if n[0].isupper()} & {n for n in dir(dlgpu.layers) if n[0].isupper()}
    in_table = {name for name, *_ in C}
    aliases = {n for n in common if getattr(dlgpu.layers, n) in {getattr(dlgpu.layers, m) for m in in_table}}
    left = common - in_table - aliases - set(NOT_IN_TABLE)
    assert left == set(), f"add these to layer_cases.py or NOT_IN_TABLE: {sorted(left)}"
    assert set(NOT_IN_TABLE) <= common


def test_average_pool_same_padding_follows_tensorflow():
    """The reference the Keras-torch case above is held to: TensorFlow averages the real inputs only."""
    x = rand((1, 5, 6, 1))
    out = dlgpu.layers.AveragePooling2D(3, 2, "same")(x).numpy()[0, ..., 0]
    padded = np.pad(x[0, ..., 0], ((1, 1), (0, 1)), constant_values=np.nan)  # TF's split: the extra pixel after
    ref = np.array([[np.nanmean(padded[i * 2:i * 2 + 3, j * 2:j * 2 + 3]) for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(out, ref, rtol=1e-6)
