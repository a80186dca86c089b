"""Intersection-over-union metrics (IoU, MeanIoU, BinaryIoU, OneHotIoU, OneHotMeanIoU) from a weighted
confusion matrix accumulated with one ``bincount`` per batch."""

from __future__ import annotations


import numpy as np

from dlgpu.backend import device as _device
from dlgpu.metrics.base import EPSILON, Metric, _pair, _result
from dlgpu.ops._core import array_module


class _IoUBase(Metric):
    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True, sparse_y_pred=True,
                 axis=-1):
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"{type(self).__name__}: `num_classes` must be a positive integer; received "
                             f"num_classes={num_classes!r}")
        self.num_classes = int(num_classes)
        self.ignore_class = ignore_class
        self.sparse_y_true = sparse_y_true
        self.sparse_y_pred = sparse_y_pred
        self.axis = axis
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        # rows: true class, columns: predicted class (Keras's confusion_matrix(labels, predictions))
        self.total_cm = 0.0

    def _labels(self, yt, yp):
        return yt, yp

    def update_state(self, y_true, y_pred, sample_weight=None):
        yt, yp = _pair(y_true, y_pred)
        yt, yp = self._labels(yt, yp)
        if not self.sparse_y_true:
            yt = yt.argmax(axis=self.axis)
        if not self.sparse_y_pred:
            yp = yp.argmax(axis=self.axis)
        xp = array_module(yp)
        shape = yt.shape
        yt, yp = yt.reshape(-1), yp.reshape(-1)
        if yt.shape != yp.shape:
            raise ValueError(f"{type(self).__name__}: y_true and y_pred must hold one class id per position; "
                             f"received {yt.shape[0]} labels and {yp.shape[0]} predictions.")
        yt, yp = yt.astype(np.int64), yp.astype(np.int64)
        n = self.num_classes
        # ids outside [0, num_classes) and the ignored class never reach the matrix (Keras's bounds mask)
        keep = (yt >= 0) & (yt < n) & (yp >= 0) & (yp < n)
        if self.ignore_class is not None:
            keep &= yt != self.ignore_class
        w = keep.astype(np.float64)
        if sample_weight is not None:
            sw = _pair(sample_weight, yp)[0].astype(np.float64)
            if sw.ndim and sw.size != w.size:  # per-sample weights spread over a sample's positions
                sw = xp.broadcast_to(sw.reshape(sw.shape + (1,) * (len(shape) - sw.ndim)), shape)
            w = w * sw.reshape(-1) if sw.ndim else w * sw
        cells = xp.where(keep, yt * n + yp, 0)
        cm = xp.bincount(cells, weights=w, minlength=n * n).reshape(n, n)
        self.total_cm = self.total_cm + cm

    def _per_class(self):
        if isinstance(self.total_cm, float):
            cm = np.zeros((self.num_classes, self.num_classes))
        else:
            cm = _device.to_numpy(self.total_cm)
        tp = np.diag(cm)
        return tp, cm.sum(axis=0) + cm.sum(axis=1) - tp


class IoU(_IoUBase):
    """Mean IoU over ``target_class_ids`` (classes absent from both labels and predictions are left out)."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred, axis=axis)
        target_class_ids = list(target_class_ids)
        if not target_class_ids:
            raise ValueError(f"{type(self).__name__}: `target_class_ids` must name at least one class.")
        bad = [c for c in target_class_ids if not 0 <= c < num_classes]
        if bad:
            raise ValueError(f"Target class id {bad[0]} is out of range, which is [0, {num_classes}).")
        self.target_class_ids = target_class_ids

    def result(self):
        tp, denominator = self._per_class()
        tp, denominator = tp[self.target_class_ids], denominator[self.target_class_ids]
        valid = denominator > 1e-9
        iou = np.where(valid, tp / (denominator + EPSILON), 0.0)
        return _result(iou.sum() / (valid.sum() + EPSILON))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "target_class_ids": self.target_class_ids,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class BinaryIoU(IoU):
    """IoU of classes 0 and/or 1 after thresholding predictions (``>= threshold`` is class 1)."""

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(num_classes=2, target_class_ids=target_class_ids, name=name, dtype=dtype)
        self.threshold = threshold

    def _labels(self, yt, yp):
        return yt, (yp >= self.threshold).astype(np.int64)

    def get_config(self):
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold, "name": self.name,
                "dtype": self.dtype}


class MeanIoU(IoU):
    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True, sparse_y_pred=True,
                 axis=-1):
        valid = isinstance(num_classes, (int, np.integer)) and num_classes > 0  # else the base class explains
        super().__init__(num_classes, list(range(num_classes)) if valid else [0], name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotIoU(IoU):
    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None, sparse_y_pred=False,
                 axis=-1):
        super().__init__(num_classes, target_class_ids, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "target_class_ids": self.target_class_ids, "name": self.name,
                "dtype": self.dtype, "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


class OneHotMeanIoU(MeanIoU):
    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}
