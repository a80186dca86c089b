"""keras.tree: nested structures of lists, tuples, namedtuples and dicts, with anything else a leaf.

As Keras (which uses optree): ``None`` is a leaf, a dict's values are visited in sorted key order (an
OrderedDict's in its own order), and a rebuilt dict keeps the keys in the order of the structure given.
"""

from __future__ import annotations

import collections

__all__ = ["MAP_TO_NONE", "assert_same_paths", "assert_same_structure", "flatten", "flatten_with_path", "is_nested",
           "lists_to_tuples", "map_shape_structure", "map_structure", "map_structure_up_to", "pack_sequence_as",
           "traverse"]


class _MapToNone:
    """Returned by a ``traverse`` function to put ``None`` in the output (``None`` itself means "go on")."""

    def __repr__(self):
        return "MAP_TO_NONE"


MAP_TO_NONE = _MapToNone()


def _is_namedtuple(x):
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def is_nested(structure):
    """True for a list, tuple (namedtuples included) or dict; leaves are everything else."""
    return isinstance(structure, (list, tuple, collections.abc.Mapping))


def _keys(mapping):
    if isinstance(mapping, collections.OrderedDict):
        return list(mapping)
    try:
        return sorted(mapping)
    except TypeError:  # keys that do not sort (mixed types): insertion order
        return list(mapping)


def _children(structure):
    if isinstance(structure, collections.abc.Mapping):
        return [structure[k] for k in _keys(structure)]
    return list(structure)


def _rebuild(structure, children):
    """A node of the same kind as ``structure`` holding ``children`` (in the order _children lists them)."""
    if isinstance(structure, collections.abc.Mapping):
        by_key = dict(zip(_keys(structure), children))
        items = [(k, by_key[k]) for k in structure]
        if isinstance(structure, collections.defaultdict):
            return collections.defaultdict(structure.default_factory, items)
        return type(structure)(items) if type(structure) is not dict else dict(items)
    if _is_namedtuple(structure):
        return type(structure)(*children)
    if isinstance(structure, tuple):
        return tuple(children) if type(structure) is tuple else type(structure)(children)
    return list(children) if type(structure) is list else type(structure)(children)


def flatten(structure):
    """The leaves of ``structure``, depth first."""
    if not is_nested(structure):
        return [structure]
    out = []
    for child in _children(structure):
        out.extend(flatten(child))
    return out


def flatten_with_path(structure):
    """``(path, leaf)`` pairs, ``path`` a tuple of the list indices and dict keys leading to the leaf."""
    if not is_nested(structure):
        return [((), structure)]
    keys = _keys(structure) if isinstance(structure, collections.abc.Mapping) else range(len(structure))
    out = []
    for key, child in zip(keys, _children(structure)):
        out.extend(((key,) + path, leaf) for path, leaf in flatten_with_path(child))
    return out


def _describe(structure):
    if isinstance(structure, collections.abc.Mapping):
        return f"{type(structure).__name__} with keys {_keys(structure)}"
    if is_nested(structure):
        return f"{type(structure).__name__} of length {len(structure)}"
    return "a leaf"


def _same_structure(a, b, path):
    if is_nested(a) != is_nested(b):
        raise ValueError(f"The two structures differ at {path or 'the top'}: {_describe(a)} vs {_describe(b)}.")
    if not is_nested(a):
        return
    kind_a = "mapping" if isinstance(a, collections.abc.Mapping) else type(a)
    kind_b = "mapping" if isinstance(b, collections.abc.Mapping) else type(b)
    if kind_a != kind_b or (kind_a == "mapping" and set(a) != set(b)) or len(a) != len(b):
        raise ValueError(f"The two structures differ at {path or 'the top'}: {_describe(a)} vs {_describe(b)}.")
    keys = _keys(a) if kind_a == "mapping" else range(len(a))
    for key, ca, cb in zip(keys, _children(a), _children(b)):
        _same_structure(ca, cb, f"{path}[{key!r}]")


def assert_same_structure(a, b, check_types=None):
    """Raise ValueError unless ``a`` and ``b`` nest the same way (same container types, lengths and dict
    keys); leaves may differ.  ``check_types`` is accepted as Keras does (deprecated there): types are
    always compared."""
    _same_structure(a, b, "")


def map_structure(func, *structures):
    """``func`` applied to the leaves (the matching leaves of several structures of the same shape), in a
    structure like the first."""
    if not structures:
        raise ValueError("map_structure: give at least one structure.")
    if not callable(func):
        raise TypeError(f"map_structure: `func` must be callable; received {func!r}")
    for other in structures[1:]:
        assert_same_structure(structures[0], other)
    leaves = [flatten(s) for s in structures]
    return pack_sequence_as(structures[0], [func(*args) for args in zip(*leaves)])


def assert_same_paths(a, b):
    """Raise ValueError unless ``a`` and ``b`` have the same leaf paths (list indices and dict keys), whatever
    their container types (a list and a tuple, two namedtuples of other classes)."""
    a_paths = {path for path, _ in flatten_with_path(a)}
    b_paths = {path for path, _ in flatten_with_path(b)}
    if a_paths != b_paths:
        message = "`a` and `b` don't have the same paths."
        if a_paths - b_paths:
            message += f"\nPaths in `a` missing in `b`:\n{a_paths - b_paths}"
        if b_paths - a_paths:
            message += f"\nPaths in `b` missing in `a`:\n{b_paths - a_paths}"
        raise ValueError(message)


def map_structure_up_to(shallow_structure, func, *structures):
    """``func`` applied where ``shallow_structure`` has its leaves, to what ``structures`` hold there (which
    may nest deeper: it reaches ``func`` whole); the result is laid out as ``shallow_structure``."""
    if not structures:
        raise ValueError("Must provide at least one structure")

    def walk(shallow, items, path):
        if not is_nested(shallow):
            return func(*items)
        for item in items:
            if not is_nested(item):
                raise ValueError(f"Structures don't have the same nested structure: at {path or 'the top'} the "
                                 f"shallow structure has {_describe(shallow)}, a structure has {_describe(item)}.")
            _same_structure(_rebuild(shallow, [None] * len(shallow)), _rebuild(item, [None] * len(item)), path)
        columns = zip(*[_children(item) for item in items])
        keys = _keys(shallow) if isinstance(shallow, collections.abc.Mapping) else range(len(shallow))
        return _rebuild(shallow, [walk(child, list(column), f"{path}[{key!r}]")
                                  for key, child, column in zip(keys, _children(shallow), columns)])
    return walk(shallow_structure, list(structures), "")


def map_shape_structure(func, structure):
    """map_structure for shapes: a list or tuple of ints and Nones is one leaf, handed to ``func`` whole."""
    if isinstance(structure, (list, tuple)) and all(isinstance(e, (int, type(None))) for e in structure):
        return func(structure)
    if not is_nested(structure):
        return func(structure)
    return _rebuild(structure, [map_shape_structure(func, child) for child in _children(structure)])


def pack_sequence_as(structure, flat_sequence, sequence_fn=None):
    """``flat_sequence`` laid out in the shape of ``structure`` (the inverse of ``flatten``).
    ``sequence_fn(node, children)`` builds each container when given."""
    flat_sequence = list(flat_sequence)
    needed = len(flatten(structure))
    if needed != len(flat_sequence):
        raise ValueError(f"pack_sequence_as: the structure has {needed} leaves but flat_sequence has "
                         f"{len(flat_sequence)} items.")
    build = sequence_fn or _rebuild
    position = 0

    def pack(node):
        nonlocal position
        if not is_nested(node):
            position += 1
            return flat_sequence[position - 1]
        return build(node, [pack(child) for child in _children(node)])
    return pack(structure)


def traverse(func, structure, top_down=True):
    """Call ``func`` on every node, containers included.  Top down: where ``func`` returns None the node's
    children are traversed, otherwise its result replaces the node (and its children are not visited).
    Bottom up: ``func`` sees the node rebuilt from its traversed children, and None keeps that node.
    ``MAP_TO_NONE`` puts None in the output."""
    def children_traversed():
        if not is_nested(structure):
            return structure
        return _rebuild(structure, [traverse(func, child, top_down) for child in _children(structure)])

    if top_down:
        result = func(structure)
        if result is None:
            return children_traversed()
    else:
        traversed = children_traversed()
        result = func(traversed)
        if result is None:
            return traversed
    return None if result is MAP_TO_NONE else result


def lists_to_tuples(structure):
    """``structure`` with every list turned into a tuple."""
    if not is_nested(structure):
        return structure
    children = [lists_to_tuples(child) for child in _children(structure)]
    return tuple(children) if isinstance(structure, list) else _rebuild(structure, children)
