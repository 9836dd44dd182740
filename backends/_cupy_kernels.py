"""Optional fused CuPy kernels: the same math as xpnet's portable code, in fewer launches.

Each entry of ``KERNELS`` is a plain function looked up by name through
``backends.fast_path``; xpnet falls back to its portable array-API code when a
name is missing. On a GPU, small networks are bound by kernel-launch overhead, so
fusing an Adam step (~12 launches) or a dropout mask (~25) into one launch matters.
Integer kernels (the dropout mask) reproduce the portable bits exactly; floating
kernels agree with the portable code to rounding (the compiler may contract a*b+c
into one FMA), which the parity tests bound.
"""
from __future__ import annotations

from typing import Any

import cupy

_adam = cupy.ElementwiseKernel(
    "T g, T b1, T b2, T step, T eps",
    "T p, T m, T v",
    """
    m = b1 * m + (T(1) - b1) * g;
    v = b2 * v + (T(1) - b2) * (g * g);
    p -= step * (m / (sqrt(v) + eps));
    """,
    "xpnet_adam",
)


def adam(p: Any, g: Any, m: Any, v: Any, beta1: float, beta2: float, step: Any, eps: Any) -> None:
    """In place: m ← β₁m + (1-β₁)g; v ← β₂v + (1-β₂)g²; p ← p - step·m/(√v + eps).

    ``step`` and ``eps`` already carry Adam's bias corrections (see xpnet.optim.Adam); host floats, or 0-d
    device arrays of p's dtype (a CUDA graph's per-step table, see xpnet/train/graphed.py)."""
    t = p.dtype.type
    _adam(g, t(beta1), t(beta2), _scalar(t, step), _scalar(t, eps), p, m, v)


adam.device_scalars = True  # type: ignore[attr-defined]


def _scalar(dtype: Any, x: Any) -> Any:
    """A kernel's scalar argument: a host number as ``dtype``, a 0-d device array as it is (read by the kernel)."""
    return x if isinstance(x, cupy.ndarray) else dtype(x)


_relu = cupy.ElementwiseKernel("T x", "T y, T mask", "mask = x > T(0) ? T(1) : T(0); y = x * mask;",
                               "xpnet_relu")


def relu_forward(x: Any) -> tuple[Any, Any]:
    """(y, mask) with mask = [x > 0] in x's dtype and y = x·mask (one launch)."""
    y = cupy.empty_like(x)
    mask = cupy.empty_like(x)
    _relu(x, y, mask)
    return y, mask


_LOWBIAS32 = """
__device__ __forceinline__ unsigned int xpnet_lowbias32(unsigned int x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16; return x;
}
"""

_dropout = cupy.ElementwiseKernel(
    "uint32 half, uint32 offset, uint32 k0, uint32 k1, uint32 threshold, T scale",
    "T out",
    """
    unsigned int g = (unsigned int)i + offset;
    unsigned int j = g < half ? g : g - half;
    unsigned int bits = xpnet_lowbias32(xpnet_lowbias32(j + k0) ^ k1);
    unsigned int u16 = g < half ? (bits & 0xFFFFU) : (bits >> 16);
    out = u16 >= threshold ? scale : T(0);
    """,
    "xpnet_dropout_mask",
    preamble=_LOWBIAS32,
)


def dropout_mask(shape: tuple[int, ...], dtype: Any, k0: Any, k1: Any, threshold: int, scale: float,
                 offset: int = 0, total: int | None = None) -> Any:
    """The scaled dropout mask of xpnet.random.dropout_keep (bit-identical keep decisions); ``offset`` and
    ``total`` as there: elements offset.. of the mask of a draw of ``total`` elements (element g of the
    whole draw uses word g, or g - half, of the key). ``k0``, ``k1``: host ints, or 0-d uint32 device words
    (xpnet.random.key_words)."""
    out = cupy.empty(shape, dtype=dtype)
    total = out.size if total is None else total
    _dropout(cupy.uint32((total + 1) // 2), cupy.uint32(offset), _scalar(cupy.uint32, k0), _scalar(cupy.uint32, k1),
             cupy.uint32(threshold), out.dtype.type(scale), out)
    return out


dropout_mask.device_scalars = True  # type: ignore[attr-defined]


_bce = cupy.ElementwiseKernel(
    "T z, T y, T inv_n",
    "T loss, T grad",
    """
    T e = exp(-fabs(z));
    T r = T(1) / (T(1) + e);
    T p = z >= T(0) ? r : e * r;
    loss = (z > T(0) ? z : T(0)) - z * y + log1p(e);
    grad = (p - y) * inv_n;
    """,
    "xpnet_bce",
)


def binary_cross_entropy(z: Any, y: Any) -> tuple[Any, Any]:
    """(mean BCE-from-logits, gradient) as xpnet.losses.binary_cross_entropy, in two launches."""
    inv_n = z.dtype.type(1.0 / z.size)
    loss, grad = _bce(z, y, inv_n)
    return loss.sum() * inv_n, grad


_softmax_ce = cupy.RawKernel(r"""
template <typename T>
__device__ void row(const T* z, const T* y, T* grad, T* loss, int rows, int k, T inv_b) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const T* zr = z + (long long)r * k; const T* yr = y + (long long)r * k; T* gr = grad + (long long)r * k;
    T m = zr[0];
    for (int j = 1; j < k; ++j) m = zr[j] > m ? zr[j] : m;
    T total = 0, ys = 0;
    for (int j = 0; j < k; ++j) { T s = zr[j] - m; T e = exp(s); gr[j] = e; total += e; ys += yr[j] * s; }
    for (int j = 0; j < k; ++j) gr[j] = (gr[j] / total - yr[j]) * inv_b;
    loss[r] = log(total) - ys;
}
extern "C" __global__ void xpnet_ce_f32(const float* z, const float* y, float* g, float* l, int rows, int k, float ib)
{ row<float>(z, y, g, l, rows, k, ib); }
extern "C" __global__ void xpnet_ce_f64(const double* z, const double* y, double* g, double* l, int rows, int k,
                                        double ib)
{ row<double>(z, y, g, l, rows, k, ib); }
""", "xpnet_ce_f32")
_CE_F64 = None


def softmax_cross_entropy(z: Any, y: Any) -> tuple[Any, Any]:
    """(mean softmax cross-entropy from logits, gradient) as xpnet.losses.softmax_cross_entropy.

    One thread per row (the class count is small for an MLP head), then one sum."""
    global _CE_F64
    if z.dtype not in (cupy.float32, cupy.float64) or y.dtype != z.dtype:
        raise TypeError("fused softmax cross-entropy needs float32/float64 z and y of the same dtype")
    z = cupy.ascontiguousarray(z)
    y = cupy.ascontiguousarray(y)
    rows, k = z.shape
    grad = cupy.empty_like(z)
    loss = cupy.empty(rows, dtype=z.dtype)
    if z.dtype == cupy.float32:
        kernel = _softmax_ce
    else:
        if _CE_F64 is None:
            _CE_F64 = cupy.RawKernel(_softmax_ce.code, "xpnet_ce_f64")
        kernel = _CE_F64
    inv_b = z.dtype.type(1.0 / rows)
    threads = 128
    kernel(((rows + threads - 1) // threads,), (threads,), (z, y, grad, loss, cupy.int32(rows), cupy.int32(k), inv_b))
    return loss.sum() * inv_b, grad


def dense_backward(x: Any, dy: Any, W: Any, grad_W: Any, grad_b: Any, need_dx: bool) -> Any:
    """grad_W ← xᵀ dy and grad_b ← Σ_batch dy written in place (no copy); returns dy Wᵀ (or None)."""
    cupy.matmul(x.T, dy, out=grad_W)
    cupy.sum(dy, axis=0, out=grad_b)
    return dy @ W.T if need_dx else None


KERNELS = {
    "dense_backward": dense_backward,
    "adam": adam,
    "relu_forward": relu_forward,
    "dropout_mask": dropout_mask,
    "binary_cross_entropy": binary_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
}
