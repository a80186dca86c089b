"""keras.saving.KerasFileEditor: inspect, edit and re-save the weights of a Keras .keras or .weights.h5 file
(adapting an old weights file to a changed architecture, as Keras's own editor does).

The file's weights become ``weights_dict``, a nested dict following the HDF5 groups with each ``vars`` level
folded into its object (Keras's editor skips an object whose ``vars`` is empty, and with it an RNN's cell:
here the cell stays, so that a re-save keeps it) (``{"layers": {"dense": {"0": kernel, "1": bias}}}``); objects are named by their path
("layers/dense") or, when unique, by their last part ("dense").  ``compare(model)`` lists where the file and
a model disagree, the model's side being what dlgpu would write for it (keras_format's attribute walk, the
layout load_weights reads).  ``save`` writes a .weights.h5 in Keras's layout.  The HDF5 reading refuses
what Keras's refuses: links to other files, virtual or external datasets, absurd shapes.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import zipfile

import numpy as np

from dlgpu.models import keras_format

_MAX_DATASET_BYTES = 1 << 32  # as Keras: a dataset over 4 GiB is refused rather than read


class KerasFileEditor:
    """Open ``filepath`` (a .keras or .weights.h5 file) for inspection and editing."""

    def __init__(self, filepath):
        filepath = os.fspath(filepath)
        self.filepath = filepath
        self.config = self.metadata = None
        h5py = keras_format._h5py()
        if filepath.endswith(".keras"):
            with zipfile.ZipFile(filepath) as archive:
                names = set(archive.namelist())
                for needed in (keras_format._CONFIG, keras_format._WEIGHTS):
                    if needed not in names:
                        raise ValueError(f"KerasFileEditor: {filepath!r} is not a Keras archive: it has no {needed}.")
                self.config = json.loads(archive.read(keras_format._CONFIG))
                if keras_format._METADATA in names:
                    self.metadata = json.loads(archive.read(keras_format._METADATA))
                source = io.BytesIO(archive.read(keras_format._WEIGHTS))
        elif filepath.endswith(".weights.h5"):
            source = filepath
        else:
            raise ValueError(f"Invalid filename: expected a `.keras` `.weights.h5` extension. Received: "
                             f"filepath={filepath}")
        self.object_metadata = {}  # "/layers/dense" -> the group's attributes (its object's name)
        with h5py.File(source, "r") as h5:
            self.weights_dict = _read(h5py, h5, "", self.object_metadata)
        print(f"Keras model file '{filepath}'")
        if self.metadata is not None:
            print(f"Saved with Keras {self.metadata.get('keras_version')} - date: {self.metadata.get('date_saved')}")

    # -- inspection -----------------------------------------------------------------------------------------
    def summary(self):
        """Print the weight structure of the file."""
        print("Weights structure")
        for line in self._tree_lines(self.weights_dict, "  ", ""):
            print(line)

    def _tree_lines(self, tree, prefix, path):
        items = list(tree.items())
        for i, (key, value) in enumerate(items):
            last = i == len(items) - 1
            connector = "└─ " if last else "├─ "
            where = f"{path}/{key}"
            if isinstance(value, dict):
                name = self.object_metadata.get(where, {}).get("name")
                yield f"{prefix}{connector}{key}" + (f" ('{name}')" if name is not None else "")
                yield from self._tree_lines(value, prefix + ("    " if last else "│   "), where)
            else:
                yield f"{prefix}{connector}{key}: shape={tuple(value.shape)}, dtype={value.dtype}"

    def compare(self, reference_model):
        """List every object or weight the file and ``reference_model`` do not share, and every weight whose
        shape differs.  Returns ``{"status": "success" | "error", "error_count", "match_count"}``."""
        print("Running comparison")
        h5py = keras_format._h5py()
        with h5py.File(io.BytesIO(keras_format._h5_bytes(reference_model, with_optimizer=False)), "r") as h5:
            reference = _read(h5py, h5, "", {})
        errors, matches = 0, 0
        checked = set()

        def walk(target, ref, path, target_name, ref_name, count_matches):
            nonlocal errors, matches
            for key, value in ref.items():
                where = f"{path}/{key}"
                if where in checked:
                    continue
                if key not in target:
                    errors += 1
                    checked.add(where)
                    kind = "Object" if isinstance(value, dict) else "Weight"
                    print(f"...{kind} {where} present in {ref_name}, missing from {target_name}")
                elif isinstance(value, dict):
                    walk(target[key], value, where, target_name, ref_name, count_matches)
                elif tuple(target[key].shape) != tuple(value.shape):
                    errors += 1
                    checked.add(where)
                    print(f"...Weight shape mismatch for {where}\n    In {ref_name}: shape={tuple(value.shape)}\n"
                          f"    In {target_name}: shape={tuple(target[key].shape)}")
                elif count_matches:
                    matches += 1
        walk(self.weights_dict, reference, "", "saved file", "reference model", True)
        walk(reference, self.weights_dict, "", "reference model", "saved file", False)
        print("─────────────────────")
        if errors == 0:
            print("Comparison successful: saved file is compatible with the reference model")
            print(f"    Found {matches} matching weight{'' if matches == 1 else 's'}")
        else:
            print(f"Found {errors} error{'' if errors == 1 else 's'}: saved file is not compatible with the "
                  f"reference model")
        return {"status": "success" if errors == 0 else "error", "error_count": errors, "match_count": matches}

    # -- edits ----------------------------------------------------------------------------------------------
    def _locate(self, object_name):
        """The dicts holding ``object_name`` (a path, or a name found exactly once) and its key there."""
        if "/" in object_name:
            parts = object_name.split("/")
            holder = self.weights_dict
            for part in parts[:-1]:
                if part not in holder or not isinstance(holder[part], dict):
                    raise ValueError(f"Path '{object_name}' not found in model.")
                holder = holder[part]
            if parts[-1] not in holder:
                raise ValueError(f"Path '{object_name}' not found in model.")
            return holder, parts[-1]
        found = []

        def search(tree):
            for key, value in tree.items():
                if key == object_name:
                    found.append(tree)
                if isinstance(value, dict):
                    search(value)
        search(self.weights_dict)
        if len(found) > 1:
            raise ValueError(f"Name '{object_name}' occurs more than once in the model; try passing a complete path")
        if not found:
            raise ValueError(f"Source name '{object_name}' does not appear in the model. Use `editor.summary()` "
                             f"to list all objects.")
        return found[0], object_name

    def rename_object(self, object_name, new_name):
        """Rename an object (e.g. a layer): ``"dense_2"`` or ``"layers/dense_2"`` becomes ``new_name``."""
        if "/" in new_name:
            raise ValueError(f"Argument `target_name` should be a leaf name, not a full path name. Received: "
                             f"target_name='{new_name}'")
        holder, key = self._locate(object_name)
        if new_name in holder and new_name != key:
            raise ValueError(f"Cannot rename '{object_name}' to '{new_name}': an object of that name is already there.")
        # keep the order of the file (the order weights load in)
        items = [(new_name if k == key else k, v) for k, v in holder.items()]
        holder.clear()
        holder.update(items)

    def delete_object(self, object_name):
        """Remove an object (e.g. a layer) and all its weights."""
        holder, key = self._locate(object_name)
        holder.pop(key)

    def add_object(self, object_path, weights):
        """Add an object at ``object_path`` (e.g. ``"layers/dense_2"``) with ``weights`` ({"0": kernel, ...})."""
        weights = _checked_weights(weights)
        parts = object_path.split("/")
        holder = self.weights_dict
        for part in parts[:-1]:
            if part not in holder:
                raise ValueError(f"Path '{'/'.join(parts[:-1])}' not found in model.")
            holder = holder[part]
        holder[parts[-1]] = weights

    def delete_weight(self, object_name, weight_name):
        """Remove one weight (e.g. ``"0"``) of an object."""
        holder, key = self._locate(object_name)
        if weight_name not in holder[key]:
            raise ValueError(f"Weight {weight_name} not found in object {object_name}. Weights found: "
                             f"{list(holder[key].keys())}")
        holder[key].pop(weight_name)

    def add_weights(self, object_name, weights):
        """Add weights ({"2": array, ...}) to an existing object."""
        weights = _checked_weights(weights)
        holder, key = self._locate(object_name)
        holder[key].update(weights)

    def save(self, filepath):
        """Write the edited weights as a Keras .weights.h5 file (model.load_weights reads it, Keras's too)."""
        filepath = os.fspath(filepath)
        if not filepath.endswith(".weights.h5"):
            raise ValueError(f"Invalid `filepath` argument: expected a `.weights.h5` extension. Received: "
                             f"filepath={filepath}")
        groups = []

        def collect(tree, path):
            arrays = [(k, v) for k, v in tree.items() if not isinstance(v, dict)]
            if arrays:
                groups.append((f"{path}/vars" if path else "vars", arrays))
            for key, value in tree.items():
                if isinstance(value, dict) and value:
                    collect(value, f"{path}/{key}" if path else key)
        collect(self.weights_dict, "")
        h5py = keras_format._h5py()

        def write(handle):
            with h5py.File(handle, "w") as h5:
                for path, arrays in groups:
                    group = h5.require_group(path)
                    for name, value in arrays:
                        group.create_dataset(name, data=np.asarray(value))
        buffer = io.BytesIO()
        write(buffer)
        keras_format._atomic_write(filepath, lambda handle: handle.write(buffer.getvalue()))

    def resave_weights(self, filepath):
        self.save(filepath)


def _read(h5py, group, path, metadata):
    """The weights under ``group`` as nested dicts (each ``vars`` folded into its object), the groups'
    attributes collected into ``metadata`` by path; refuses what Keras's reader refuses."""
    if group.attrs:
        metadata[path] = dict(group.attrs)
    out = collections.OrderedDict()
    for key in group.keys():
        where = f"{path}/{key}"
        link = group.get(key, getclass=True, getlink=True)
        if link in (h5py.ExternalLink, h5py.SoftLink):
            raise ValueError(f"Not allowed: H5 file with {link.__name__} at {where}")
        value = group[key]
        if isinstance(value, h5py.Group):
            if key == "vars":  # this object's own weights, folded into it (an RNN's cell stays a child)
                out.update(_read(h5py, value, path, metadata))
            else:
                child = _read(h5py, value, where, metadata)
                if child:
                    out[key] = child
            continue
        if not isinstance(value, h5py.Dataset):
            continue
        if value.external or value.is_virtual:
            raise ValueError(f"Not allowed: H5 file with an external or virtual dataset at {where}")
        if len(value.shape) > 64 or value.dtype.itemsize * math.prod(value.shape) > _MAX_DATASET_BYTES:
            raise ValueError(f"HDF5 dataset {where} has shape {value.shape}, dtype {value.dtype}: too large "
                             f"to load safely (the limit is {_MAX_DATASET_BYTES} bytes).")
        out[key] = value[()]
    return out


def _checked_weights(weights):
    if not isinstance(weights, dict):
        raise ValueError(f"Argument `weights` should be a dict where keys are weight names (usually '0', '1', etc.) "
                         f"and values are NumPy arrays. Received: type(weights)={type(weights)}")
    return collections.OrderedDict((str(k), np.asarray(v)) for k, v in weights.items())
