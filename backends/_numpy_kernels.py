"""Optional NumPy fast paths: the portable math, minus temporaries (``out=`` arguments).

Looked up by name through ``backends.fast_path``; results are bit-identical to the
portable code (the same BLAS and reduction calls, written straight into their target).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def dense_backward(x: Any, dy: Any, W: Any, grad_W: Any, grad_b: Any, need_dx: bool) -> Any:
    """grad_W ← xᵀ dy and grad_b ← Σ_batch dy written in place; returns dy Wᵀ (or None)."""
    np.matmul(x.T, dy, out=grad_W)
    np.sum(dy, axis=0, out=grad_b)
    return dy @ W.T if need_dx else None


KERNELS = {"dense_backward": dense_backward}
