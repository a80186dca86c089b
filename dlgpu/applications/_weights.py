"""Fetching Keras's published application files, and reading Keras's legacy ``.h5`` weight layout.

Files go to ``<cache>/models/`` (``<cache>`` as for datasets: ``$DLGPU_CACHE``, else
``$XDG_CACHE_HOME/dlgpu``, else ``~/.cache/dlgpu``), through the datasets' downloader, so a download is
checked against Keras's published hash before it is renamed into place.  A cached file with a known hash
is hashed again on use; a mismatch means a corrupt or foreign file, which is downloaded again (as Keras's
``get_file`` does).

The legacy layout (what ``keras.applications`` publishes): the file (or its ``model_weights`` group, in a
whole-model save) has an attribute ``layer_names``; each such layer's group has ``weight_names``, and the
datasets under those names hold the layer's weights in the order Keras creates them (Conv2D kernel, bias;
BatchNormalization gamma, beta, moving_mean, moving_variance; ...), which is dlgpu's order too.  We match
layers by name, so a model whose layers have Keras's names loads a Keras file.  h5py reads it: no pickle.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from dlgpu.datasets import _files

logger = logging.getLogger("dlgpu")

INSTALL_HINT = "pip install 'dlgpu[applications]'"


def models_dir():
    return _files.cache_root() / "models"


def get_file(file_name, url, file_hash=None, what="this file"):
    """The local path of ``file_name`` in the models cache, downloaded from ``url`` if missing or corrupt."""
    directory = models_dir()
    path = directory / file_name
    state = "is not in the cache"
    if path.is_file():
        if file_hash is None or _files.file_digest(path, file_hash) == file_hash:
            return path
        state = "in the cache does not match its published hash"
        logger.warning("%s does not match its published hash %s (corrupt or another file); downloading it again",
                       path, file_hash)
    base, remote = url.rsplit("/", 1)
    failures = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        failures.append(f"cannot create {directory}: {e}")
    else:
        if file_hash is None:
            logger.info("Keras publishes no checksum for %s; it is downloaded unverified", remote)
        if _files._download(remote, file_hash, [base + "/"], path, failures):
            return path
    raise FileNotFoundError(
        f"Could not get {what}: {file_name} {state} ({path}) and downloading it from {url} failed "
        "(offline?):\n" + "".join(f"    {line}\n" for line in failures)
        + f"Download {url} yourself and put it at {path} (or set DLGPU_CACHE to a directory whose models/ "
        "folder holds it)" + (", or pass the path of a local weights file as `weights=`." if what.startswith(
            "the ImageNet weights") else ".")
    )


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise ImportError(f"Reading Keras's .h5 weight files needs h5py: {INSTALL_HINT}") from e
    return h5py


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_legacy_h5(path):
    """``{layer name: [weight arrays]}`` from a Keras legacy .h5 file, in the file's layer order, layers
    without weights left out."""
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        group = f
        if "layer_names" not in group.attrs and "model_weights" in group:
            group = group["model_weights"]
        if "layer_names" not in group.attrs:
            raise ValueError(
                f"{path}: not a Keras legacy .h5 weights file (no 'layer_names' attribute). Keras 3's "
                "'.weights.h5' and '.keras' files are not read by dlgpu.applications.")
        out = {}
        for name in (_text(n) for n in group.attrs["layer_names"]):
            layer_group = group[name]
            names = [_text(w) for w in layer_group.attrs.get("weight_names", [])]
            if names:
                out[name] = [np.asarray(layer_group[w]) for w in names]
        return out


def _stored_arrays(layer, arrays):
    """The file's arrays for ``layer``, less what Keras stores and dlgpu does not keep: Normalization's
    integer ``count`` (EfficientNet's stem), which nothing reads."""
    from dlgpu.layers import Normalization
    if isinstance(layer, Normalization) and len(arrays) == len(layer.weights) + 1 and arrays[-1].ndim == 0:
        return arrays[:-1]
    return arrays


def keras_layer_order(model):
    """``model``'s layers in the order Keras 3 lists a functional model's layers (``map_graph``): by
    decreasing depth (the longest path to an output), ties by first visit of a depth-first walk from the
    outputs.  Keras's legacy loader pairs weighted layers with the file's in this order, which is not always
    the order the layers were called in (a residual block's shortcut comes after its main branch)."""
    first_visit, post_order, done = {}, [], set()

    def visit(tensor):
        layer, node_index, _ = tensor._history
        node = layer._inbound_nodes[node_index]
        if id(node) in done:
            return
        first_visit.setdefault(id(layer), len(first_visit))
        for parent in node.parent_tensors:
            visit(parent)
        done.add(id(node))
        post_order.append(node)
    for out in model.outputs:
        visit(out)
    node_depth, layer_depth, layers_by_id = {}, {}, {}
    for node in reversed(post_order):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = node_depth[id(node)] = depth
        layers_by_id[id(node.layer)] = node.layer
        for parent in node.parent_tensors:
            layer, node_index, _ = parent._history
            key = id(layer._inbound_nodes[node_index])
            node_depth[key] = max(depth + 1, node_depth.get(key, 0))
    ordered = sorted(layers_by_id, key=lambda k: (-layer_depth[k], first_visit[k]))
    listed = {id(layer) for layer in model.layers}  # not ops on symbolic tensors, as in Keras
    return [layers_by_id[k] for k in ordered if k in listed]


def load_weights(model, path):
    """Set the weights of ``model``'s layers from file ``path``.

    A ``.h5``/``.hdf5`` file is read as Keras's legacy layout; anything else goes to ``model.load_weights``
    (dlgpu's own weight files).  Layers are matched by name when the file has every name the model's
    weighted layers carry; otherwise, when the file holds as many weighted layers as the model, by order,
    as Keras's own legacy loader always does (InceptionV3's published file names its layers ``conv2d_1``
    ...: names Keras generated, which no two sessions share).  Every layer is checked before any is changed.
    """
    path = Path(os.fspath(path))
    if path.suffix not in (".h5", ".hdf5"):
        model.load_weights(str(path))
        return
    stored = read_legacy_h5(path)
    weighted = [layer for layer in keras_layer_order(model) if layer.weights]
    if all(layer.name in stored for layer in weighted) or len(stored) != len(weighted):
        pairs = [(layer, layer.name) for layer in weighted]
    else:
        pairs = list(zip(weighted, stored))
    pending = []
    for layer, stored_name in pairs:
        params = layer.weights
        if stored_name not in stored:
            raise ValueError(f"{path}: no weights for layer '{layer.name}' ({type(layer).__name__}) of model "
                             f"'{model.name}'; the file holds layers {sorted(stored)[:8]}"
                             f"{' ...' if len(stored) > 8 else ''} ({len(stored)} with weights, the model has "
                             f"{len(weighted)}). Was it saved from another architecture?")
        arrays = _stored_arrays(layer, stored[stored_name])
        where = f"layer '{layer.name}'" + (f" (file layer '{stored_name}')" if stored_name != layer.name else "")
        if len(arrays) != len(params):
            raise ValueError(f"{path}: {where} has {len(params)} weights but the file holds {len(arrays)}.")
        for v, a in zip(params, arrays):
            if tuple(a.shape) != tuple(v.shape):
                raise ValueError(f"{path}: {where}: weight '{v.path}' has shape {tuple(v.shape)}, the "
                                 f"file holds {tuple(a.shape)} (another input size, `classes` or `alpha`?).")
        pending.append((layer, arrays))
    for layer, arrays in pending:
        layer.set_weights(arrays)
