"""Attribute tracking: the list and dict a layer holds in a public attribute (Layer.__setattr__ makes a
plain list or dict one of these), so that layers, variables and metrics put in them later are tracked by
the layer too, as Keras's TrackedList and TrackedDict (``self.blocks = []`` then
``self.blocks.append(Block())`` in build trains the blocks)."""

from __future__ import annotations


_metric_class = []


def _is_metric(obj):
    if not _metric_class:
        from dlgpu.metrics.base import Metric  # not at the top: dlgpu.metrics imports losses, which import layers
        _metric_class.append(Metric)
    return isinstance(obj, _metric_class[0])


class _Tracked:
    """What the tracked containers share: an owner layer that tracks what is put in them."""

    def __init__(self, values=(), owner=None):
        super().__init__(values)
        self._owner = owner

    def _track(self, items):
        # Skipped while pickle or deepcopy refill the container (no owner yet, or one not yet restored): the
        # owner's own copied state already lists what it tracked.
        owner = self.__dict__.get("_owner")
        if owner is not None and "_layers" in owner.__dict__:
            owner._track(items)


class _TrackedList(_Tracked, list):
    """A list held in a layer's attribute: what is added to it later is tracked by the layer too.  Made
    without an owner (tree.map_structure rebuilding one by its type), it is a plain list."""

    def append(self, item):
        super().append(item)
        self._track([item])

    def extend(self, items):
        items = list(items)
        super().extend(items)
        self._track(items)

    def insert(self, index, item):
        super().insert(index, item)
        self._track([item])

    def __setitem__(self, index, value):
        super().__setitem__(index, value)
        self._track(value if isinstance(index, slice) else [value])

    def __iadd__(self, items):
        self.extend(items)
        return self


class _TrackedDict(_Tracked, dict):
    """A dict held in a layer's attribute: the values put in it later are tracked by the layer too.  Made
    without an owner, it is a plain dict."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._track([value])

    def update(self, *args, **kwargs):
        added = dict(*args, **kwargs)
        super().update(added)
        self._track(added.values())

    def setdefault(self, key, default=None):
        value = super().setdefault(key, default)
        self._track([value])
        return value
