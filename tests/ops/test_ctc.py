"""ctc_loss, ctc_decode and losses.CTC: values and gradients against torch.nn.functional.ctc_loss, finite
differences, Keras's decoding layout, a small CTC model trained with fit and saved, and GPU against CPU."""

import numpy as np
import pytest

import dlgpu
from dlgpu import layers, losses, ops
from dlgpu.autograd import GradientTape, Tensor
from tests.helpers import check_gradients

torch = pytest.importorskip("torch")


def torch_ctc(target, logits, target_length, output_length, blank=0):
    """Keras's torch backend: log_softmax of the logits, then F.ctc_loss with reduction='none'."""
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.ctc_loss(torch.log_softmax(z, -1).transpose(0, 1), torch.tensor(target),
                                        torch.tensor(output_length), torch.tensor(target_length), blank=blank,
                                        reduction="none")
    loss.sum().backward()
    return loss.detach().numpy(), z.grad.numpy()


def dl_ctc(target, logits, target_length, output_length, mask_index=0):
    z = Tensor(logits)
    with GradientTape() as tape:
        tape.watch(z)
        loss = ops.ctc_loss(target, z, target_length, output_length, mask_index=mask_index)
    return loss, tape.gradient(loss, z)


# awkward cases: empty and one-label targets, repeats that need a blank between (exactly as many frames as
# needed), output_length < max time, a label run that cannot fit at all
AWKWARD = dict(target=np.array([[1, 2, 3, 4], [2, 2, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [4, 4, 1, 0]]),
               target_length=np.array([4, 2, 1, 0, 4, 3]), output_length=np.array([7, 5, 3, 2, 7, 4]))


@pytest.mark.parametrize("mask_index", [0, 2, 4])
def test_ctc_loss_matches_torch(mask_index):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 7, 5)).astype(np.float32) * 2
    target = AWKWARD["target"].copy()
    if mask_index:  # keep labels off the blank: swap the blank's id with 0
        target = np.where(target == mask_index, 0, target)
    loss, grad = dl_ctc(target, logits, AWKWARD["target_length"], AWKWARD["output_length"], mask_index)
    ref, ref_grad = torch_ctc(target, logits, AWKWARD["target_length"], AWKWARD["output_length"], mask_index)
    assert loss.dtype == "float32" and loss.shape == (6,)
    np.testing.assert_allclose(loss.numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=1e-4, atol=1e-5)
    # frames past output_length get no gradient
    assert not grad.numpy()[2, 3:].any()


def test_ctc_loss_infeasible_is_inf_with_zero_gradient():
    logits = np.random.default_rng(1).standard_normal((2, 3, 3)).astype(np.float32)
    target = np.array([[1, 1, 0], [1, 2, 1]])  # "1 1" needs 3 frames; "1 2 1" in 2 frames is impossible
    loss, grad = dl_ctc(target, logits, np.array([2, 3]), np.array([3, 2]))
    ref, _ = torch_ctc(target, logits, np.array([2, 3]), np.array([3, 2]))
    assert np.isfinite(loss.numpy()[0]) and np.isinf(loss.numpy()[1]) and np.isinf(ref[1])
    np.testing.assert_allclose(loss.numpy()[0], ref[0], rtol=1e-5)
    assert np.all(grad.numpy()[1] == 0) and np.all(np.isfinite(grad.numpy()))


def test_ctc_loss_batch_one_and_zero_frames():
    logits = np.random.default_rng(2).standard_normal((1, 4, 3)).astype(np.float32)
    loss, _ = dl_ctc([[2, 1]], logits, [2], [4])
    np.testing.assert_allclose(loss.numpy(), torch_ctc(np.array([[2, 1]]), logits, [2], [4])[0], rtol=1e-5)
    empty = ops.ctc_loss(np.ones((2, 1), np.int32), np.zeros((2, 4, 3), np.float32), [0, 1], [0, 0])
    assert empty.numpy()[0] == 0 and np.isinf(empty.numpy()[1])
    no_labels, grad = dl_ctc(np.zeros((2, 0), np.int32), logits.repeat(2, 0), [0, 0], [4, 2])
    np.testing.assert_allclose(no_labels.numpy(), torch_ctc(np.zeros((2, 0), np.int64), logits.repeat(2, 0),
                                                            [0, 0], [4, 2])[0], rtol=1e-5)


def test_ctc_loss_finite_differences():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((3, 5, 4))
    target, tl, ol = np.array([[1, 1, 2], [3, 0, 0], [2, 3, 0]]), np.array([2, 1, 2]), np.array([5, 4, 3])
    check_gradients(lambda z: ops.ctc_loss(target, z, tl, ol), [logits], rtol=1e-4, atol=1e-6)


def test_ctc_loss_float16_and_float64():
    logits = np.random.default_rng(4).standard_normal((2, 4, 3))
    target, tl, ol = np.array([[1, 2], [2, 0]]), np.array([2, 1]), np.array([4, 3])
    ref = torch_ctc(target, logits, tl, ol)[0]
    assert ops.ctc_loss(target, logits.astype(np.float16), tl, ol).dtype == "float32"
    out64 = ops.ctc_loss(target, Tensor(logits, dtype="float64"), tl, ol)
    assert out64.dtype == "float64"
    np.testing.assert_allclose(out64.numpy(), ref, rtol=1e-10)


def test_ctc_loss_rejects_bad_input():
    z = np.zeros((2, 4, 3), np.float32)
    with pytest.raises(ValueError, match="output"):
        ops.ctc_loss([[1]], np.zeros((4, 3), np.float32), [1], [4])
    with pytest.raises(ValueError, match="mask_index"):
        ops.ctc_loss([[1], [2]], z, [1, 1], [4, 4], mask_index=3)
    with pytest.raises(ValueError, match="blank"):
        ops.ctc_loss([[1], [0]], z, [1, 1], [4, 4])
    with pytest.raises(ValueError, match="target_length"):
        ops.ctc_loss([[1], [2]], z, [2, 1], [4, 4])
    with pytest.raises(ValueError, match="output_length"):
        ops.ctc_loss([[1], [2]], z, [1, 1], [5, 4])
    with pytest.raises(ValueError, match="target"):
        ops.ctc_loss([[1], [3]], z, [1, 1], [4, 4])
    with pytest.raises(ValueError, match="integers"):
        ops.ctc_loss([[1], [2]], z, [1.5, 1], [4, 4])
    with pytest.raises(ValueError, match="shape"):
        ops.ctc_loss([1, 2], z, [1, 1], [4, 4])


def test_ctc_decode_greedy_hand_example():
    # frames' argmax: 1 1 0 2 2 0 2 | 3 (past the length)
    best = [1, 1, 0, 2, 2, 0, 2, 3]
    logits = np.full((1, 8, 4), -1.0, np.float32)
    logits[0, np.arange(8), best] = np.arange(8, dtype=np.float32)
    decoded, scores = ops.ctc_decode(logits, [7])
    assert decoded.shape == (1, 1, 8) and decoded.dtype == "int32" and scores.shape == (1, 1)
    assert decoded.numpy()[0, 0].tolist() == [1, 2, 2, -1, -1, -1, -1, -1]
    np.testing.assert_allclose(scores.numpy(), [[-sum(range(7))]])
    unmerged, _ = ops.ctc_decode(logits, [7], merge_repeated=False)
    assert unmerged.numpy()[0, 0].tolist() == [1, 1, 2, 2, 2, -1, -1, -1]
    other_blank, _ = ops.ctc_decode(logits, [8], mask_index=2)
    assert other_blank.numpy()[0, 0].tolist() == [1, 0, 0, 3, -1, -1, -1, -1]


def test_ctc_decode_greedy_batch():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((3, 6, 4)).astype(np.float32)
    lengths = np.array([6, 2, 0])
    decoded, scores = ops.ctc_decode(logits, lengths)
    for b in range(3):  # the plain-Python CTC rule: argmax, collapse runs, drop blanks
        path = logits[b, :lengths[b]].argmax(-1).tolist()
        kept = [c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1])]
        assert decoded.numpy()[0, b].tolist() == kept + [-1] * (6 - len(kept))
        np.testing.assert_allclose(scores.numpy()[b, 0], -logits[b, :lengths[b]].max(-1).sum(), rtol=1e-6)


def test_ctc_decode_beam_search():
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((2, 5, 3)).astype(np.float32)
    decoded, scores = ops.ctc_decode(logits, [5, 3], strategy="beam_search", beam_width=50, top_paths=3)
    assert decoded.shape == (3, 2, 5) and scores.shape == (2, 3)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    for b, length in enumerate([5, 3]):
        # exhaustive reference (a beam this wide keeps every prefix, so the search is exact): the probability
        # of each label sequence summed over all its frame paths
        totals = {}
        for path in np.ndindex(*(3,) * length):
            kept = tuple(c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1]))
            totals[kept] = np.logaddexp(totals.get(kept, -np.inf), logp[b, np.arange(length), path].sum())
        best = sorted(totals.items(), key=lambda kv: -kv[1])[:3]
        for k, (seq, value) in enumerate(best):
            assert decoded.numpy()[k, b].tolist() == list(seq) + [-1] * (5 - len(seq))
            np.testing.assert_allclose(scores.numpy()[b, k], value, rtol=1e-5)
    with pytest.raises(ValueError, match="strategy"):
        ops.ctc_decode(logits, [5, 3], strategy="viterbi")
    with pytest.raises(NotImplementedError, match="merge_repeated"):
        ops.ctc_decode(logits, [5, 3], strategy="beam_search", merge_repeated=False)


def test_losses_ctc_function_and_class():
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((3, 6, 4)).astype(np.float32)
    y = np.array([[1, 2, 0], [3, 3, 1], [2, 0, 0]])
    per_sample = losses.ctc(y, logits)
    ref, _ = torch_ctc(y, logits, np.array([2, 3, 1]), np.array([6, 6, 6]))
    np.testing.assert_allclose(per_sample.numpy(), ref, rtol=1e-5)
    loss = losses.CTC()
    np.testing.assert_allclose(float(loss(y, logits)), ref.mean(), rtol=1e-5)
    assert losses.get("ctc").name == "ctc" and isinstance(losses.get("CTC"), losses.CTC)
    restored = losses.deserialize(losses.serialize(losses.CTC(reduction="sum")))
    assert isinstance(restored, losses.CTC) and restored.reduction == "sum"
    with pytest.raises(ValueError, match="y_pred"):
        losses.ctc(y, logits[0])


def _ctc_model(classes=4):
    return dlgpu.Sequential([dlgpu.Input((10, 3)), layers.Conv1D(8, 3, padding="same", activation="relu"),
                             layers.GRU(8, return_sequences=True), layers.Dense(classes + 1)])


def test_ctc_model_trains_saves_and_decodes(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((16, 10, 3)).astype(np.float32)
    y = np.where(np.arange(3)[None, :] < rng.integers(1, 4, (16, 1)), rng.integers(1, 5, (16, 3)), 0)
    dlgpu.utils.set_random_seed(0)
    model = _ctc_model()
    model.compile(optimizer=dlgpu.optimizers.Adam(0.02), loss=losses.CTC())
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = str(tmp_path / "ctc.keras")
    model.save(path)
    loaded = dlgpu.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    decoded, _ = ops.ctc_decode(model.predict(x, verbose=0), np.full(16, 10))
    assert decoded.shape == (1, 16, 10) and decoded.numpy().max() <= 4


@pytest.mark.gpu
def test_ctc_on_gpu_matches_cpu():
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((6, 7, 5)).astype(np.float32)
    results = {}
    for device in ("cpu", "gpu"):
        with dlgpu.device(device):
            z = ops.convert_to_tensor(logits)
            args = [ops.convert_to_tensor(AWKWARD[k]) for k in ("target", "target_length", "output_length")]
            with GradientTape() as tape:
                tape.watch(z)
                loss = ops.ctc_loss(args[0], z, args[1], args[2])
            grad = tape.gradient(loss, z)
            greedy = ops.ctc_decode(z, args[2])
            beam = ops.ctc_decode(z, args[2], strategy="beam_search", beam_width=4, top_paths=2)
            results[device] = [loss.numpy(), grad.numpy()] + [t.numpy() for t in greedy + beam]
    for name, on_gpu, on_cpu in zip(["loss", "grad", "greedy", "greedy score", "beam", "beam score"],
                                    results["gpu"], results["cpu"]):
        np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-4, atol=1e-5, err_msg=name)
