"""Where the Keras-distributed dataset files come from, and their published checksums: one table.

The checksums are the ``file_hash`` values in Keras's own loaders (keras/src/datasets/*.py): SHA-256
for the data files, MD5 for the two word-index JSON files (Keras's ``get_file`` tells them apart by
length, and so do we).  The loaders look both tables up at call time, so tests can patch an entry
to serve synthetic files.  The files are read only after they matched (``_files.read_keras_file``),
which matters because CIFAR's batches and the IMDB/Reuters arrays are pickles.
"""

from __future__ import annotations

# Keras's own bucket; CIFAR is fetched from its authors' site, as Keras does.
KERAS_BUCKET = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
TORONTO = "https://www.cs.toronto.edu/~kriz/"

# dataset name (its directory under DLGPU_DATASETS and the cache) -> {file name on the mirror: checksum}
CHECKSUMS = {
    "cifar10": {"cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"},
    "cifar100": {"cifar-100-python.tar.gz": "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"},
    "imdb": {
        "imdb.npz": "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
        "imdb_word_index.json": "bfafd718b763782e994055a2d397834f",
    },
    "reuters": {
        "reuters.npz": "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916",
        "reuters_word_index.json": "4d44cc38712099c9e383dc6e5f11a921",
    },
    "boston_housing": {"boston_housing.npz": "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"},
    "california_housing": {
        "california_housing.npz": "1a2e3a52e0398de6463aebe6f4a8da34fb21fbb6b934cf88c3425e766f2a1a6f",
    },
}

# dataset name -> base URLs tried in order (each ends in "/").
MIRRORS = {
    "cifar10": [TORONTO],
    "cifar100": [TORONTO],
    "imdb": [KERAS_BUCKET],
    "reuters": [KERAS_BUCKET],
    "boston_housing": [KERAS_BUCKET],
    "california_housing": [KERAS_BUCKET],
}
