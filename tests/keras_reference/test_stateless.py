"""Layer.stateless_call, Optimizer.stateless_apply and a metric's stateless forms: the same program with
Keras and with dlgpu, the values compared."""

import numpy as np

import dlgpu


def _program(k, x, trainable, non_trainable, grads):
    tensor = k.ops.convert_to_tensor
    trainable, non_trainable, grads = ([tensor(v) for v in vs] for vs in (trainable, non_trainable, grads))
    model = k.Sequential([k.Input((4,)), k.layers.Dense(3, kernel_regularizer="l2"),
                          k.layers.BatchNormalization(momentum=0.8), k.layers.Dense(1)])
    out, new_non_trainable, losses = model.stateless_call(trainable, non_trainable, x, training=True,
                                                          return_losses=True)
    optimizer = k.optimizers.Adam(0.1)
    optimizer.build(model.trainable_variables)
    optimizer_values = [tensor(np.array(k.ops.convert_to_numpy(v))) for v in optimizer.variables]
    new_trainable = trainable
    for _ in range(2):
        new_trainable, optimizer_values = optimizer.stateless_apply(optimizer_values, grads, new_trainable)

    class SumAndCount(k.metrics.Metric):
        def __init__(self):
            super().__init__(name="sum_and_count")
            self.total = self.add_variable((), "zeros", name="total")
            self.count = self.add_variable((), "zeros", name="count")

        def update_state(self, values):
            self.total.assign_add(k.ops.sum(values))
            self.count.assign_add(k.ops.cast(k.ops.size(values), "float32"))

        def result(self):
            return self.total / self.count
    metric = SumAndCount()
    state = metric.stateless_reset_state()
    state = metric.stateless_update_state(state, x[0])
    result = metric.stateless_result(metric.stateless_update_state(state, x[1]))
    as_numpy = k.ops.convert_to_numpy
    return {"out": as_numpy(out), "non_trainable": [as_numpy(v) for v in new_non_trainable],
            "losses": [as_numpy(v) for v in losses], "trainable_after": [as_numpy(v) for v in new_trainable],
            "optimizer": [as_numpy(v) for v in optimizer_values], "metric": as_numpy(result),
            "untouched": [as_numpy(v) for v in model.weights]}


def test_stateless_forms_give_keras_values(keras):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    trainable = [rng.normal(size=s).astype(np.float32) for s in [(4, 3), (3,), (3,), (3,), (3, 1), (1,)]]
    non_trainable = [rng.normal(size=3).astype(np.float32), rng.uniform(0.5, 2, size=3).astype(np.float32)]
    grads = [rng.normal(size=t.shape).astype(np.float32) for t in trainable]
    ours = _program(dlgpu, x, trainable, non_trainable, grads)
    theirs = _program(keras, x, trainable, non_trainable, grads)
    for key in ("out", "metric"):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6, err_msg=key)
    # two Adam steps of lr 0.1 differ by float32 rounding (~2e-6) between the two implementations
    for key, atol in (("non_trainable", 1e-6), ("losses", 1e-6), ("trainable_after", 1e-5), ("optimizer", 1e-5)):
        assert len(ours[key]) == len(theirs[key]), key
        for a, b in zip(ours[key], theirs[key]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol, err_msg=key)
    # neither framework wrote into the model's own variables (their initial values differ between the two)
    assert not any(np.array_equal(w, t) for w, t in zip(ours["untouched"], trainable))
