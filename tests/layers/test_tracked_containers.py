"""Layers, variables and metrics put into a layer's list or dict attribute after the assignment are
tracked, as Keras's TrackedList / TrackedDict (the keras.io pattern ``self.blocks = []`` then append)."""

import json

import numpy as np

import dlgpu
from dlgpu import layers


class Holder(layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.blocks = []
        self.named = {}
        self.sizes = [1, 2]

    def build(self, input_shape):
        self.blocks.append(layers.Dense(2))
        self.blocks.extend([layers.Dense(3)])
        self.blocks.insert(0, layers.Dense(4))
        self.blocks += [layers.Dense(5)]
        self.named["scale"] = self.add_weight((), "ones", name="scale")
        self.named.update(last=layers.Dense(1))
        self.named.setdefault("counter", dlgpu.metrics.Mean(name="seen"))

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        self.named["counter"].update_state(x)
        return self.named["last"](x) * self.named["scale"]


def test_appended_layers_weights_and_metrics_are_tracked_and_trained(tmp_path):
    dlgpu.set_random_seed(0)
    holder = Holder()
    out = holder(np.ones((2, 3), "float32"))
    assert out.shape == (2, 1)
    assert len(holder.trainable_weights) == 1 + 5 * 2  # the scale, then five Dense kernels and biases
    assert [m.name for m in holder.metrics] == ["seen"]
    assert isinstance(holder.blocks, list) and isinstance(holder.named, dict)
    assert json.dumps(holder.sizes) == "[1, 2]"  # still a list to everything that reads it

    inputs = dlgpu.Input((3,))
    model = dlgpu.Model(inputs, Holder()(inputs))
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).random((16, 3)).astype("float32")
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x, x[:, :1], epochs=1, batch_size=8, verbose=0)
    assert all(not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights))


def test_replacing_an_item_tracks_the_new_one():
    holder = Holder()
    holder(np.ones((1, 3), "float32"))
    holder.blocks[1] = layers.Dense(3)
    holder.blocks[1](np.ones((1, 4), "float32"))
    assert any(layer is holder.blocks[1] for layer in holder._layers)


def test_layers_with_tracked_containers_pickle_and_deepcopy():
    import copy
    import pickle
    holder = Holder()
    holder(np.ones((1, 3), "float32"))
    for clone in (copy.deepcopy(holder), pickle.loads(pickle.dumps(holder))):
        assert len(clone.blocks) == 4 and clone.blocks._owner is clone
        np.testing.assert_array_equal(clone.blocks[0].kernel.numpy(), holder.blocks[0].kernel.numpy())
        clone.blocks.append(layers.Dense(1))
        assert any(layer is clone.blocks[-1] for layer in clone._layers)


def test_tree_functions_rebuild_tracked_containers():
    # dlgpu.tree rebuilds a container by its type: a tracked list or dict comes back as a working copy
    import dlgpu

    class Holder(dlgpu.layers.Layer):
        def __init__(self):
            super().__init__()
            self.parts = [1, 2]
            self.named = {"a": 3}

    held = Holder()
    assert dlgpu.tree.map_structure(lambda v: v * 10, held.parts) == [10, 20]
    assert dlgpu.tree.map_structure(lambda v: v + 1, held.named) == {"a": 4}
