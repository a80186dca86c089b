"""Fetching Keras's published application files; they are read by dlgpu/models/legacy_h5.py.

Files go to ``<cache>/models/`` (``<cache>`` as for datasets: ``$DLGPU_CACHE``, else
``$XDG_CACHE_HOME/dlgpu``, else ``~/.cache/dlgpu``), through the datasets' downloader, so a download is
checked against Keras's published hash before it is renamed into place.  A cached file with a known hash
is hashed again on use; a mismatch means a corrupt or foreign file, which is downloaded again (as Keras's
``get_file`` does).

The files are in Keras's legacy HDF5 layout: each layer's weights in the order Keras creates them (Conv2D
kernel, bias; BatchNormalization gamma, beta, moving_mean, moving_variance; ...), which is dlgpu's order
too, so a model whose layers have Keras's names loads a Keras file.  h5py reads it: no pickle.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

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


def read_legacy_h5(path):
    """``{layer name: [weight arrays]}`` from a Keras legacy .h5 file (dlgpu/models/legacy_h5.py)."""
    from dlgpu.models.legacy_h5 import read_legacy_h5 as read
    return read(path, INSTALL_HINT)


def load_weights(model, path):
    """Set the weights of ``model``'s layers from file ``path``: a ``.h5``/``.hdf5`` file is read as Keras's
    legacy layout (dlgpu/models/legacy_h5.py: by name, or by Keras's layer order); anything else goes to
    ``model.load_weights`` (dlgpu's own and Keras 3's weight files)."""
    path = Path(os.fspath(path))
    if path.suffix not in (".h5", ".hdf5"):
        model.load_weights(str(path))
        return
    from dlgpu.models.legacy_h5 import load_legacy_h5_weights
    load_legacy_h5_weights(model, path, INSTALL_HINT)
