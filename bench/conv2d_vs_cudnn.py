"""Time our conv2d kernels (kernels/conv2d.cu) against cuDNN (through PyTorch) on the seed CNN's layers.

    python bench/conv2d_vs_cudnn.py [--batch 64] [--iters 200]

Needs a CUDA GPU, cupy and torch (CUDA build).  Checks first (our output vs torch's, TF32 off), warms
up, then times forward and forward+backward with CUDA events, like cupy's examples/gemm/sgemm.py.
cuDNN runs channels_last (NHWC) with benchmark mode on, so it picks its best algorithm; the ratio printed
is cudnn_time / our_time (>= 0.7 is the target; > 1 means we are faster).
Not run in CI: written on a machine without a GPU, so it has not been run yet.
"""
from __future__ import annotations

import argparse

import numpy as np

LAYERS = [  # (name, (H, W, Cin), (KH, KW, Cout), activation)
    ("conv1 32x3x3 on 28x28x1", (28, 28, 1), (3, 3, 32), "relu"),
    ("conv2 64x3x3 on 13x13x32", (13, 13, 32), (3, 3, 64), "relu"),
]


def _time(fn, iters):
    import cupy

    for _ in range(10):
        fn()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(iters):
        fn()
    stop.record()
    stop.synchronize()
    return cupy.cuda.get_elapsed_time(start, stop) / iters * 1e3  # microseconds


def main(argv=None):
    import cupy
    import torch

    from dlgpu.backend.kernels import KernelLibrary

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=200)
    args = ap.parse_args(argv)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    lib = KernelLibrary(cupy.RawModule, cupy)
    rng = np.random.default_rng(0)
    print(f"{'layer':28s} {'pass':9s} {'ours us':>9s} {'cudnn us':>9s} {'cudnn/ours':>10s}")
    for name, (h, w, c), (kh, kw, co), act in LAYERS:
        x = cupy.asarray(rng.standard_normal((args.batch, h, w, c)).astype(np.float32))
        wt = cupy.asarray((rng.standard_normal((kh, kw, c, co)) / np.sqrt(kh * kw * c)).astype(np.float32))
        b = cupy.asarray(rng.standard_normal(co).astype(np.float32))
        # torch views of the same memory: NHWC input as channels_last NCHW, filter as (Cout, Cin, KH, KW)
        tx = torch.as_tensor(x, device="cuda").permute(0, 3, 1, 2).requires_grad_(True)
        tw = torch.as_tensor(cupy.ascontiguousarray(wt.transpose(3, 2, 0, 1)), device="cuda")
        tw = tw.contiguous(memory_format=torch.channels_last).requires_grad_(True)
        tb = torch.as_tensor(b, device="cuda").requires_grad_(True)

        def ours_fwd():
            return lib.conv2d_forward(x, wt, b, (1, 1), (0, 0, 0, 0), act)

        def torch_fwd():
            return torch.relu(torch.nn.functional.conv2d(tx, tw, tb))

        y, ctx = ours_fwd()
        ty = torch_fwd()
        ref = cupy.asarray(ty.detach().permute(0, 2, 3, 1).contiguous())
        err = float(cupy.abs(y - ref).max())
        assert err < 1e-3, f"{name}: forward differs from cuDNN by {err}"
        dy = cupy.asarray(rng.standard_normal(y.shape).astype(np.float32))
        tdy = torch.as_tensor(dy, device="cuda").permute(0, 3, 1, 2)

        def ours_fwd_bwd():
            y_, ctx_ = ours_fwd()
            return lib.conv2d_backward(dy, ctx_, need_dx=True)

        def torch_fwd_bwd():
            out = torch_fwd()
            return torch.autograd.grad(out, (tx, tw, tb), tdy)

        for label, ours, theirs in (("fwd", ours_fwd, torch_fwd), ("fwd+bwd", ours_fwd_bwd, torch_fwd_bwd)):
            t_ours, t_cudnn = _time(ours, args.iters), _time(theirs, args.iters)
            print(f"{name:28s} {label:9s} {t_ours:9.1f} {t_cudnn:9.1f} {t_cudnn / t_ours:10.2f}")


if __name__ == "__main__":
    main()
