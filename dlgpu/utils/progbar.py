"""keras.utils.Progbar: the one progress display of dlgpu (fit/evaluate/predict draw theirs through it).

Keras's API and bookkeeping (``update(current, values, finalize)``, ``add(n, values)``, a ``target`` that may
be None, metrics averaged over the steps unless named in ``stateful_metrics``), drawn two ways:

- verbose=1 with interactive logging on (``keras.config.enable_interactive_logging``) and tqdm installed: a
  tqdm bar (``tqdm.auto``, so a widget under Jupyter) with the metrics after it;
- otherwise (verbose=2, interactive logging off, or no tqdm): one line when the bar is finalized, which suits
  log files: ``[description - ]current/target - seconds - name: value - ...``.

verbose=0 draws nothing.  Unlike Keras, a line is not redrawn per step with ANSI escapes: tqdm does that part.
"""

from __future__ import annotations

import sys
import time

import numpy as np


def _tqdm_class():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _format_value(value):
    try:
        number = float(np.mean(value))
    except (TypeError, ValueError):
        return str(value)
    return f"{number:.4f}" if abs(number) > 1e-3 else f"{number:.4e}"


class Progbar:
    """Displays a progress bar (keras.utils.Progbar).

    Args:
        target: total number of steps expected, None if unknown.
        width: accepted for Keras code; tqdm sizes its bar to the terminal.
        verbose: 0 (silent), 1 (a live bar), 2 (one line when finalized).
        interval: minimum seconds between two redraws of the live bar's metrics.
        stateful_metrics: names whose values are shown as given (not averaged over steps).
        stateless_metrics: names that are averaged (then every other name is shown as given); give at most
            one of the two.  With neither, every metric is averaged.
        unit_name: what a step is called ("step", "sample").
        description: (dlgpu) text before the bar and at the start of the final line ("Epoch 1/3").
        file: (dlgpu) where to write; default ``sys.stdout`` at the time of drawing.
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None, stateless_metrics=None,
                 unit_name="step", *, description=None, file=None):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError("Progbar: give only one of `stateful_metrics` or `stateless_metrics`. "
                             "`stateful_metrics` names the metrics not to average (the others are averaged); "
                             "`stateless_metrics` names the metrics to average (the others are shown as given).")
        if verbose not in (0, 1, 2):
            raise ValueError(f"Progbar: `verbose` must be 0, 1 or 2. Received: verbose={verbose!r}")
        if target is not None and (isinstance(target, bool) or int(target) != target or target < 0):
            raise ValueError(f"Progbar: `target` must be a non-negative integer or None. Received: target={target!r}")
        self.target = None if target is None else int(target)
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.description = description
        self._file = file
        if stateful_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = set(stateful_metrics), None
        elif stateless_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = None, set(stateless_metrics)
        else:
            self.stateful_metrics, self.stateless_metrics = set(), None
        self._seen_so_far = 0
        self._values = {}  # name -> [sum of value * steps, steps], or [value, 1] when shown as given
        self._values_order = []
        self._start = time.perf_counter()
        self._last_update = 0.0
        self._bar = None  # the tqdm bar, made on the first update when drawing live
        self._finalized = False

    # -- bookkeeping, as Keras ---------------------------------------------------------------------
    def _averaged(self, name):
        if self.stateful_metrics is not None:
            return name not in self.stateful_metrics
        return name in self.stateless_metrics

    def update(self, current, values=None, finalize=None):
        """Move the bar to step ``current``; ``values`` is a list of ``(name, value_for_last_step)``.
        ``finalize`` (default: ``current >= target``) draws the final state and closes a live bar."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or []:
            if name not in self._values_order:
                self._values_order.append(name)
            if self._averaged(name) and not finalize:
                # Weighted by the steps since the last update, so add(n) and sparse updates average right.
                steps = max(current - self._seen_so_far, 1)
                if name in self._values:
                    self._values[name][0] += value * steps
                    self._values[name][1] += steps
                else:
                    self._values[name] = [value * steps, steps]
            else:
                # Keras: a finalizing update's values are the epoch's results, shown as they are.
                self._values[name] = [value, 1]
        self._seen_so_far = current
        if self.verbose == 0 or self._finalized:
            return
        now = time.perf_counter()
        if self._live():
            self._draw_live(current, now, finalize)
        elif finalize:
            self._print_line(current, now)
        if finalize:
            self._finalized = True

    def add(self, n, values=None):
        """``update(seen + n, values)``."""
        self.update(self._seen_so_far + n, values)

    def close(self):
        """Close a live bar as it stands, without a final line (a run that stopped on an error, predict)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._finalized = True

    def _metrics(self):
        out = []
        for name in self._values_order:
            total, count = self._values[name]
            value = total / max(1, count) if isinstance(total, (int, float, np.number, np.ndarray)) else total
            out.append(f"{name}: {_format_value(value)}")
        return out

    # -- drawing -----------------------------------------------------------------------------------
    def _live(self):
        from dlgpu import config
        return self.verbose == 1 and config.is_interactive_logging_enabled() and _tqdm_class() is not None

    def _draw_live(self, current, now, finalize):
        if self._bar is None:
            self._bar = _tqdm_class()(total=self.target, desc=self.description, unit=self.unit_name, leave=True,
                                      dynamic_ncols=True, file=self._file or sys.stdout)
        bar = self._bar
        bar.update(current - bar.n)
        # the metrics at most every `interval` seconds, however fast the steps come
        if finalize or now - self._last_update >= self.interval:
            bar.set_postfix_str(" - ".join(self._metrics()), refresh=finalize)
            self._last_update = now
        if finalize:
            bar.close()
            self._bar = None

    def _print_line(self, current, now):
        count = f"{current}/{self.target}" if self.target is not None else f"{current}/Unknown"
        parts = ([self.description] if self.description else []) + [count, f"{now - self._start:.1f}s"]
        print(" - ".join(parts + self._metrics()), file=self._file or sys.stdout, flush=True)
