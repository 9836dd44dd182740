"""Optional NumPy fast paths: the portable math, minus temporaries and Python-level wrappers.

Looked up by name through ``backends.fast_path``. Each performs exactly the portable code's
floating-point operations in the same order, so results are bit-identical to it; the gain
is writing into preallocated buffers (``out=``) instead of fresh temporaries. (Splitting the
Adam update over two threads was measured and gained nothing: it is memory-bound.)
``normal`` reproduces ``xpnet.random.normal`` bit for bit (its floating-point operations in its
order, its range reductions rewritten as exact integer operations on the float64 bits), in
blocks that stay in the L2 cache. (Uniforms and dropout masks need no kernel: the portable
code, in its own cache-sized blocks, measured as fast or faster.)
"""
from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

_local = threading.local()  # per-thread scratch buffer: models trained in parallel threads don't share it


def dense_backward(x: Any, dy: Any, W: Any, grad_W: Any, grad_b: Any, need_dx: bool) -> Any:
    """grad_W ← xᵀ dy and grad_b ← Σ_batch dy written in place; returns dy Wᵀ (or None)."""
    np.matmul(x.T, dy, out=grad_W)
    np.add.reduce(dy, axis=0, out=grad_b)  # what np.sum runs, without its Python wrapper
    return dy @ W.T if need_dx else None


def relu_forward(x: Any) -> tuple[Any, Any]:
    """(x · [x > 0], the mask [x > 0]) with a boolean mask: the portable float mask's bits, one pass less
    (x · True = x · 1.0 and x · False = x · 0.0 exactly; backward's dy · mask likewise)."""
    mask = x > 0.0
    return np.multiply(x, mask), mask


def binary_cross_entropy(z: Any, y: Any) -> tuple[Any, Any]:
    """xpnet.nn.losses.binary_cross_entropy, the same operations in the same order, fewer temporaries."""
    inv_n = 1.0 / (z.shape[0] * z.shape[1])
    e = np.abs(z)
    np.negative(e, out=e)
    np.exp(e, out=e)  # e = exp(-|z|)
    terms = np.maximum(z, 0.0)
    terms -= z * y
    terms += np.log1p(e)
    value = np.add.reduce(terms, axis=None) * inv_n
    r = np.add(e, 1.0, out=terms)  # 1 + e
    np.divide(1.0, r, out=r)  # r = 1/(1 + e)
    np.multiply(e, r, out=e)  # e·r = σ(z) for z < 0
    p = np.where(z >= 0.0, r, e)
    p -= y
    p *= inv_n
    return value, p


def softmax_cross_entropy(z: Any, y: Any) -> tuple[Any, Any]:
    """xpnet.nn.losses.softmax_cross_entropy, the same operations in the same order, fewer temporaries."""
    inv_b = 1.0 / z.shape[0]
    s = z - np.maximum.reduce(z, axis=1, keepdims=True)
    es = np.exp(s)
    total = np.add.reduce(es, axis=1, keepdims=True)
    np.multiply(y, s, out=s)
    value = (np.add.reduce(np.log(total), axis=None) - np.add.reduce(s, axis=None)) * inv_b
    np.divide(es, total, out=es)
    es -= y
    es *= inv_b
    return value, es


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


adam.device_scalars = True  # type: ignore[attr-defined]  # step, eps may be 0-d arrays: the same operations


# ---- xpnet.random: the same bits, in cache-sized blocks of preallocated buffers ---------------
_BLOCK = 1 << 14  # elements per block: the (3, block) float64 buffers fit in a 2 MiB L2
_C1, _C2 = 0x7FEB352D, 0x846CA68B  # lowbias32
_LN2 = 0.6931471805599453
_SQRT2_BITS_BELOW = int(np.float64(1.4142135623730951 / 2).view(np.int64)) + 1  # first double > sqrt(2)/2
_THETA = math.pi / 2.0 * 2.0**-30
# Three Horner recurrences run as one (3, block) array, p <- p * V + c, with V = [s², -t², -t²]:
# the log series 1/23, 1/21, ..., 1/1 in s² and the cos and sin/theta series 1/22!, ..., 1/0! and
# 1/23!, ..., 1/1! in -t² (c - t² p == c + (-t²) p exactly), as xpnet.random evaluates them.
_HORNER = [np.array([[1.0 / j], [1.0 / math.factorial(j - 1)], [1.0 / math.factorial(j)]])
           for j in range(23, 0, -2)]


def _lowbias32(x: Any, t: Any) -> None:
    """x ← lowbias32(x) in place (uint32, wrapping); t is scratch of x's shape."""
    np.right_shift(x, 16, out=t)
    x ^= t
    x *= _C1
    np.right_shift(x, 15, out=t)
    x ^= t
    x *= _C2
    np.right_shift(x, 16, out=t)
    x ^= t


def _words(w: Any, t: Any, starts: tuple[int, ...], k0: int, k1: int) -> None:
    """Row r of w ← h(h(starts[r] + i + k0) ^ k1), i = 0, 1, ... (xpnet.random's bits)."""
    iota = np.arange(w.shape[1], dtype=np.uint32)
    for row, start in zip(w, starts):
        np.add(iota, np.uint32((start + k0) & 0xFFFFFFFF), out=row)
    _lowbias32(w, t)
    w ^= np.uint32(k1)
    _lowbias32(w, t)


def random_normal(n: int, k0: int, k1: int, std: float, dtype: Any) -> Any:
    """xpnet.random.normal: Box-Muller z * std rounded to ``dtype``, shape (n,), the same bits."""
    out = np.empty(n, dtype=dtype)
    size = max(1, min(n, _BLOCK))
    W, WT = np.empty((2, size), np.uint32), np.empty((2, size), np.uint32)
    F, P, V = np.empty((3, size)), np.empty((3, size)), np.empty((3, size))
    for a in range(0, n, size):
        b = min(size, n - a)
        _words(W[:, :b], WT[:, :b], (a, n + a), k0, k1)
        out[a:a + b] = _box_muller(W[:, :b], WT[:, :b], F[:, :b], P[:, :b], V[:, :b], std)
    return out


def _box_muller(w: Any, wt: Any, f: Any, p: Any, v: Any, std: float) -> Any:
    """z * std in float64 for words n1, n2 = w, with xpnet.random's operations, in the buffers.

    Exact rewrites only: v = m 2^e and x = m' 4^j are split by integer operations on the
    float64 bits instead of comparison ladders (the same m, e, m', j); x = -2 log u1 is
    2·32 ln2 - (e·2ln2 + 4s·poly) (every rounding doubled, so the same bits); the quadrant's
    sign and 2^-j are applied as one exact multiplication by ±2^-j.
    """
    n1, n2 = w
    m, y, theta = f
    e, j = p.view(np.int64)[:2]  # integer scratch until the Horner sums overwrite p
    # v = n1 + 0.5 = m 2^e with m in (sqrt2/2, sqrt2]: e = (bits(v) - bits(first double > sqrt2/2)) >> 52
    np.copyto(m, n1)
    m += 0.5
    bits = m.view(np.int64)
    np.subtract(bits, _SQRT2_BITS_BELOW, out=e)
    e >>= 52
    np.left_shift(e.view(np.uint64), 52, out=j.view(np.uint64))  # unsigned: e may be -1
    bits -= j
    np.subtract(m, 1.0, out=y)  # s = (m - 1)/(m + 1)
    np.add(m, 1.0, out=v[0])
    y /= v[0]
    np.multiply(y, y, out=v[0])  # s²
    np.copyto(m, e)  # e·2ln2
    m *= 2.0 * _LN2
    np.bitwise_and(n2, (1 << 30) - 1, out=wt[0])  # theta = (n2 mod 2^30) pi/2 2^-30
    np.copyto(theta, wt[0])
    theta *= _THETA
    np.multiply(theta, theta, out=v[1])
    np.negative(v[1], out=v[1])  # -t²
    v[2] = v[1]
    np.multiply(v, _HORNER[0], out=p)
    for c in _HORNER[1:-1]:
        p += c
        p *= v
    p += _HORNER[-1]
    log_p, cos_t, sin_t = p
    y *= 4.0  # x = -2 log u1 = 2·32 ln2 - (e·2ln2 + 4s·poly)
    log_p *= y
    log_p += m
    np.subtract(64.0 * _LN2, log_p, out=m)
    # x = m' 4^j with m' in [1/4, 1) if x < 1/4, m' = x if 1/4 <= x < 4, m' in [1, 4) if x >= 4;
    # from the biased exponent B of x: j = ((1024 - B) >> 1) + ((B - 1023) >> 63)
    e, j, sel = v.view(np.int64)  # integer scratch from here on
    bits = m.view(np.int64)
    np.right_shift(bits, 52, out=e)
    np.subtract(1024, e, out=j)
    j >>= 1
    e -= 1023
    e >>= 63
    j += e
    np.left_shift(j.view(np.uint64), 53, out=e.view(np.uint64))
    bits += e  # m <- m'
    np.multiply(m, 0.35, out=y)  # sqrt(m') by five Newton steps
    y += 0.6
    for _ in range(5):
        np.divide(m, y, out=log_p)
        y += log_p
        y *= 0.5
    # cos(2 pi u2): sin where bit 30 of n2 is set (a bit blend), negated where bit31 ^ bit30
    sin_t *= theta
    mask = wt[1].view(np.int32)
    np.left_shift(n2, 1, out=wt[1])
    mask >>= 31  # 0 or -1
    np.copyto(sel, mask)
    np.bitwise_xor(cos_t.view(np.int64), sin_t.view(np.int64), out=e)
    sel &= e
    cos_t.view(np.int64)[...] ^= sel
    y *= cos_t
    np.left_shift(n2, 1, out=wt[1])
    wt[1] ^= n2
    np.copyto(sel, wt[1])
    sel >>= 31
    sel.view(np.uint64)[...] <<= 63
    np.subtract(1023, j, out=j)  # ±2^-j
    j <<= 52
    j |= sel
    y *= j.view(np.float64)
    if std != 1.0:
        y *= std
    return y


KERNELS = {"dense_backward": dense_backward, "adam": adam, "normal": random_normal, "relu_forward": relu_forward,
           "binary_cross_entropy": binary_cross_entropy, "softmax_cross_entropy": softmax_cross_entropy}
