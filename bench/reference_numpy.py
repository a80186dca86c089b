"""A hand-written numpy training step of the MLP 784-128-128-10 with Adam: the floor for dlgpu-cpu.

No framework: three matmuls forward, fused softmax cross-entropy, three matmuls (plus two for dx)
backward, Adam in place.  Written the way one would by hand for speed: float32 throughout, buffers
reused across steps, in-place updates.  dlgpu's MLP train step should cost at most 1.15x this.
"""

from __future__ import annotations

import math

import numpy as np


class NumpyMLP:
    def __init__(self, weights, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7):
        """``weights`` as Keras orders them: [W1, b1, W2, b2, W3, b3], W as (in, out)."""
        self.params = [np.array(w, dtype=np.float32) for w in weights]
        self.ms = [np.zeros_like(p) for p in self.params]
        self.vs = [np.zeros_like(p) for p in self.params]
        self.tmp = [np.empty_like(p) for p in self.params]
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0

    def forward(self, x):
        w1, b1, w2, b2, w3, b3 = self.params
        h1 = x @ w1
        h1 += b1
        np.maximum(h1, 0, out=h1)
        h2 = h1 @ w2
        h2 += b2
        np.maximum(h2, 0, out=h2)
        z = h2 @ w3
        z += b3
        return h1, h2, z

    def predict(self, x):
        z = self.forward(x)[2]
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def train_step(self, x, y):
        """One step on (x, integer labels y); returns the mean loss before the update."""
        w1, b1, w2, b2, w3, b3 = self.params
        n = x.shape[0]
        h1, h2, z = self.forward(x)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        total = p.sum(axis=1, keepdims=True)
        rows = np.arange(n)
        loss = float(np.mean(np.log(total[:, 0]) - z[rows, y]))
        p /= total
        p[rows, y] -= 1.0
        p *= np.float32(1.0 / n)                      # dz3
        grads = [None] * 6
        grads[4] = h2.T @ p
        grads[5] = p.sum(axis=0)
        d2 = p @ w3.T
        d2 *= h2 > 0
        grads[2] = h1.T @ d2
        grads[3] = d2.sum(axis=0)
        d1 = d2 @ w2.T
        d1 *= h1 > 0
        grads[0] = x.T @ d1
        grads[1] = d1.sum(axis=0)
        self._adam(grads)
        return loss

    def _adam(self, grads):
        self.t += 1
        t = self.t
        alpha = np.float32(self.lr * math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t))
        c1, c2, eps = np.float32(1.0 - self.beta1), np.float32(1.0 - self.beta2), np.float32(self.eps)
        for p, g, m, v, tmp in zip(self.params, grads, self.ms, self.vs, self.tmp):
            np.subtract(g, m, out=tmp)
            tmp *= c1
            m += tmp
            np.multiply(g, g, out=tmp)
            tmp -= v
            tmp *= c2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= alpha
            p -= tmp
