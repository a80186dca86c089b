"""Intra-op parallelism for the CPU backend: a primitive's batch split across the cores.

numpy runs every ufunc, copy and strided add on one core; only BLAS uses more.  In a small CNN most of
the time goes to exactly those single-core passes (im2col, bias and activation, pooling, col2im), so on
a 2-core machine half the CPU idles through them.  Primitives whose samples are independent hand
contiguous batch slices to a small persistent pool; numpy releases the GIL inside the array calls, so
the slices run at the same time.

Two owners of the same cores do not mix: OpenBLAS's threads keep spinning for a while after each call,
and a slice that runs next to a spinning BLAS thread crawls (measured on the seed CNN step, batch 64,
2 cores: 23.4 ms serial, 29.7 ms with our threads beside multi-threaded BLAS, 18.1 ms with BLAS held to
one thread).  So BLAS is held to one thread inside every parallel region, and products are split by
rows here too while regions are running; a product in a phase without regions (an MLP's step) keeps
BLAS's own threads, which split a single product better.  Holding BLAS needs threadpoolctl
(``pip install dlgpu[cpu]``); without it every primitive runs serially and BLAS threads as it likes.
BLAS's setting is restored when each primitive returns, so the user's own numpy code keeps its threads.

``DLGPU_CPU_THREADS=n`` sets the number of threads (1 switches all of this off); the default is the
number of cores this process may run on.  CuPy arrays always take one call over the whole batch: the
GPU parallelises inside each launch.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

_log = logging.getLogger("dlgpu")

# Below this much work a slice is cheaper to run than to hand to another thread (a hand-off costs
# ~20 us, and a product splits well only above ~8 MFLOP, measured).  Work is counted in bytes of
# memory traffic; a FLOP counts as FLOP_BYTES of them.
MIN_PARALLEL_BYTES = 512 * 1024
FLOP_BYTES = 1 / 16
# After a multi-threaded call OpenBLAS's idle threads spin for ~120 ms (measured: 0.12 s of CPU time
# while the caller slept), so products stay on our threads while regions keep coming: a CNN's step runs
# one every few ms.  Longer would slow an MLP that runs right after a CNN (a 0.5 s hold cost the MLP
# benchmark 25 % when it followed the convolution benchmarks).
HOLD_SECONDS = 0.1

_lock = threading.Lock()  # one parallel region at a time; a second caller runs its batch serially
_pool = []  # _Worker threads, started on first use
_blas = None  # threadpoolctl's controllers for the loaded BLAS libraries, or () when unavailable
_enabled = None  # enabled(), computed on first use and whenever the thread count changes
_last_region = -1e9  # time.monotonic() when the last parallel region ran
_threads = None  # the thread count in force; None: not yet read from DLGPU_CPU_THREADS / the cores


def set_thread_count(count=None):
    """Use ``count`` threads in CPU primitives from now on (1: none besides the caller); ``None`` goes
    back to the default, DLGPU_CPU_THREADS or else the cores this process may run on."""
    global _threads, _enabled
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"set_thread_count: count must be a positive integer or None, got {count!r}")
    _threads, _enabled = count, None


def thread_count():
    """Threads a parallel region uses (see set_thread_count)."""
    global _threads
    if _threads is None:
        _threads = _default_thread_count()
    return _threads


def _default_thread_count():
    value = os.environ.get("DLGPU_CPU_THREADS", "").strip()
    if value:
        try:
            count = int(value)
        except ValueError:
            count = 0
        if count < 1:
            raise ValueError(f"DLGPU_CPU_THREADS must be a positive integer, got {value!r}")
        return count
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _blas_controllers():
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _log.debug("dlgpu: threadpoolctl is not installed, so CPU primitives run on one core "
                       "(pip install dlgpu[cpu] to use them all)")
            _blas = ()
        else:
            _blas = tuple(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _blas


class _Worker:
    """A thread that runs one slice at a time.  Two plain locks hand work over and back: a hand-off
    costs ~10 us, against ~23 us through concurrent.futures (measured, 2 cores)."""

    def __init__(self, index):
        self._work_ready = threading.Lock()
        self._work_ready.acquire()
        self._work_done = threading.Lock()
        self._work_done.acquire()
        self._task = self._error = None
        threading.Thread(target=self._loop, name=f"dlgpu-cpu-{index}", daemon=True).start()

    def _loop(self):
        while True:
            self._work_ready.acquire()
            body, start, stop = self._task
            try:
                body(start, stop)
            except BaseException as error:  # noqa: BLE001 - handed to the caller by wait()
                self._error = error
            self._task = None
            self._work_done.release()

    def start(self, body, start, stop):
        self._task, self._error = (body, start, stop), None
        self._work_ready.release()

    def wait(self):
        """Block until the slice finished; its exception, if it raised one."""
        self._work_done.acquire()
        return self._error


def _workers(count):
    while len(_pool) < count:
        _pool.append(_Worker(len(_pool)))
    return _pool


def _forget_pool_after_fork():
    # A forked child inherits the worker objects but not their threads: start fresh ones on first use.
    global _pool, _lock
    _pool, _lock = [], threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def batch_slices(n, parts):
    """``parts`` contiguous (start, stop) ranges covering range(n), sizes differing by at most one."""
    parts = max(1, min(parts, n))
    bounds = [n * k // parts for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(parts)]


def enabled():
    """Whether numpy primitives run on several threads (with BLAS held to one)."""
    global _enabled
    if _enabled is None:
        _enabled = thread_count() > 1 and bool(_blas_controllers())
    return _enabled


def runs_whole(array, blas_bound=False):
    """Whether for_batch would run its body once, as is, with BLAS untouched: primitives then take their
    straight-line code (a small dense layer's step saves ~10 us of slicing and bookkeeping)."""
    if not (_enabled or _enabled is None and enabled()) or type(array) is not np.ndarray:
        return True
    return blas_bound and time.monotonic() - _last_region > HOLD_SECONDS


def for_batch(array, n, work_bytes, body, blas_bound=False):
    """Run ``body(start, stop)`` over contiguous slices of range(n) that together cover it once.

    ``array`` says the device (numpy arrays get threads, others one call); ``work_bytes`` is the
    primitive's memory traffic (FLOPs times FLOP_BYTES for products), which decides whether threads
    pay off.  ``body`` must write only its own slice of any shared output.  BLAS runs on one thread
    throughout (also when the batch is too small to split), except for ``blas_bound`` bodies as below.
    An exception from any slice is raised here, after every slice finished.

    ``blas_bound`` marks a body that is mostly one matrix product.  BLAS threads a single product
    better than slices do (a 128x784x128 dense layer: 165 us against 222 us), so such a body runs
    whole with BLAS's own threads, unless a parallel region ran in the last HOLD_SECONDS: then the
    process is in a phase where our threads own the cores (a CNN's step), and waking BLAS's threads
    would leave them spinning beside ours.
    """
    global _last_region
    if runs_whole(array, blas_bound):
        body(0, n)
        return
    saved = [(controller, controller.num_threads) for controller in _blas]
    for controller, count in saved:
        if count != 1:
            controller.set_num_threads(1)
    try:
        if n < 2 or work_bytes < MIN_PARALLEL_BYTES or not _lock.acquire(blocking=False):
            body(0, n)  # too small to split, or already inside a parallel region
            return
        try:
            _run_slices(batch_slices(n, thread_count()), body)
            _last_region = time.monotonic()
        finally:
            _lock.release()
    finally:
        for controller, count in saved:
            if count != 1:
                controller.set_num_threads(count)


def _run_slices(slices, body):
    workers = _workers(len(slices) - 1)[:len(slices) - 1]
    for worker, (start, stop) in zip(workers, slices[1:]):
        worker.start(body, start, stop)
    first_error = None
    try:
        body(*slices[0])  # the calling thread takes a slice too instead of waiting idle
    except BaseException as error:  # noqa: BLE001 - re-raised below once the others finished
        first_error = error
    for worker in workers:
        # Every started slice is collected, even through Ctrl-C in a notebook: a worker whose result is
        # left behind would answer the next region's wait with this one's.
        while True:
            try:
                error = worker.wait()
                break
            except KeyboardInterrupt as interrupt:
                first_error = interrupt
        if first_error is None:
            first_error = error
    if first_error is not None:
        raise first_error
