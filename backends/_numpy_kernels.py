"""Optional NumPy fast paths: the portable math, minus temporaries.

Looked up by name through ``backends.fast_path``. Each performs exactly the portable code's
floating-point operations in the same order, so results are bit-identical to it; the gain
is writing into preallocated buffers (``out=``) instead of fresh temporaries. (Splitting the
Adam update over two threads was measured and gained nothing: it is memory-bound.)
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

_local = threading.local()  # per-thread scratch buffer: models trained in parallel threads don't share it


def dense_backward(x: Any, dy: Any, W: Any, grad_W: Any, grad_b: Any, need_dx: bool) -> Any:
    """grad_W ← xᵀ dy and grad_b ← Σ_batch dy written in place; returns dy Wᵀ (or None)."""
    np.matmul(x.T, dy, out=grad_W)
    np.sum(dy, axis=0, out=grad_b)
    return dy @ W.T if need_dx else None


def adam(p: Any, g: Any, m: Any, v: Any, beta1: float, beta2: float, step: float, eps: float) -> None:
    """In place, as xpnet.optim.Adam's portable update (same operations, same order, one scratch buffer)."""
    s = getattr(_local, "scratch", None)
    if s is None or s.shape != p.shape or s.dtype != p.dtype:
        s = _local.scratch = np.empty_like(p)
    np.multiply(g, 1.0 - beta1, out=s)  # m ← β₁m + (1-β₁)g
    m *= beta1
    m += s
    np.multiply(g, g, out=s)  # v ← β₂v + (1-β₂)g²
    s *= 1.0 - beta2
    v *= beta2
    v += s
    np.sqrt(v, out=s)  # p ← p - step·m/(√v + eps)
    s += eps
    np.divide(m, s, out=s)
    s *= step
    p -= s


KERNELS = {"dense_backward": dense_backward, "adam": adam}
