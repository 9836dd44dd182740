"""Plain NumPy MLP, written the way the tutorials write it.

This is the baseline peer of the benchmark: a forward pass that caches each
layer's input and pre-activation, backpropagation derived by hand, and Adam
with bias correction.  Like tutorial code it allocates fresh arrays for every
intermediate result (no ``out=`` buffers, no fused kernels); it is meant to be
an honest, typical implementation, not a deliberately slow one.

ReLU hidden layers, He-normal initialisation, zero biases.  One output unit
means sigmoid + binary cross-entropy; more means softmax + cross-entropy.
The loss is the batch mean, plus ``l2 / 2 * sum(W**2)`` over the weights.
"""

from __future__ import annotations

import numpy as np


class PlainNumpyMLP:
    def __init__(self, sizes, seed=0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.sizes = list(sizes)
        self.dtype = np.dtype(dtype)
        self.W = []
        self.b = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            std = np.sqrt(2.0 / fan_in)
            self.W.append((rng.standard_normal((fan_in, fan_out)) * std).astype(self.dtype))
            self.b.append(np.zeros(fan_out, dtype=self.dtype))

    # ------------------------------------------------------------ forward
    def forward(self, X):
        """Return (output probabilities, cache) where cache[i] = (A_in, Z)."""
        cache = []
        A = X
        last = len(self.W) - 1
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            Z = A @ W + b
            cache.append((A, Z))
            if i < last:
                A = np.maximum(Z, 0)
            else:
                A = self._output(Z)
        return A, cache

    @staticmethod
    def _output(Z):
        if Z.shape[1] == 1:
            return 1.0 / (1.0 + np.exp(-Z))
        Z = Z - Z.max(axis=1, keepdims=True)
        E = np.exp(Z)
        return E / E.sum(axis=1, keepdims=True)

    def predict_proba(self, X):
        return self.forward(X)[0]

    # ------------------------------------------------------------ loss
    @staticmethod
    def loss(P, Y, eps=1e-7):
        P = np.clip(P, eps, 1 - eps)
        if P.shape[1] == 1:
            return float(-np.mean(Y * np.log(P) + (1 - Y) * np.log(1 - P)))
        return float(-np.mean(np.sum(Y * np.log(P), axis=1)))

    # ------------------------------------------------------------ backward
    def backward(self, P, Y, cache, l2=0.0):
        """Gradients of the batch-mean loss. Returns (dW list, db list)."""
        n = Y.shape[0]
        dW = [None] * len(self.W)
        db = [None] * len(self.W)
        # sigmoid+BCE and softmax+CE share the same output gradient
        dZ = (P - Y) / n
        for i in reversed(range(len(self.W))):
            A_in, Z = cache[i]
            dW[i] = A_in.T @ dZ
            if l2:
                dW[i] = dW[i] + l2 * self.W[i]
            db[i] = dZ.sum(axis=0)
            if i > 0:
                dA = dZ @ self.W[i].T
                dZ = dA * (cache[i - 1][1] > 0)
        return dW, db


class Adam:
    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params, grads):
        """Return the updated parameters (new arrays, tutorial style)."""
        self.t += 1
        new = []
        for k, (p, g) in enumerate(zip(params, grads)):
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * g * g
            m_hat = self.m[k] / (1 - self.beta1 ** self.t)
            v_hat = self.v[k] / (1 - self.beta2 ** self.t)
            new.append(p - self.lr * m_hat / (np.sqrt(v_hat) + self.eps))
        return new


def one_hot(y, n_out, dtype=np.float32):
    if n_out == 1:
        return y.reshape(-1, 1).astype(dtype)
    Y = np.zeros((len(y), n_out), dtype=dtype)
    Y[np.arange(len(y)), y] = 1
    return Y


def train(model, X, y, lr=1e-3, epochs=10, batch_size=32, l2=0.0, seed=0):
    """Mini-batch Adam; reshuffles every epoch. Returns per-epoch mean losses."""
    rng = np.random.default_rng(seed)
    Y = one_hot(y, model.sizes[-1], model.dtype)
    opt = Adam(model.W + model.b, lr=lr)
    n = X.shape[0]
    history = []
    for _ in range(epochs):
        perm = rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            xb, yb = X[idx], Y[idx]
            P, cache = model.forward(xb)
            batch_loss = model.loss(P, yb)
            if l2:
                batch_loss += 0.5 * l2 * sum(float(np.sum(W * W)) for W in model.W)
            total += batch_loss * len(idx)
            dW, db = model.backward(P, yb, cache, l2=l2)
            params = opt.step(model.W + model.b, dW + db)
            k = len(model.W)
            model.W, model.b = params[:k], params[k:]
        history.append(total / n)
    return history
