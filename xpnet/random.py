"""Counter-based random numbers, bit-identical on every array-API backend.

Every draw is a pure function of a key ``(seed, stream, counter)`` and the element
index ``i``: no hidden global state, nothing to seed, nothing copied from the host
but two 32-bit key words.

Bits
    The key is reduced on the host (Python ints, SplitMix64) to two 32-bit words
    ``k0, k1``. Element ``i`` gets ``h(h(i + k0) ^ k1)`` where ``h`` is the
    ``lowbias32`` integer hash (xorshift-multiply, a bijection of 32-bit words with
    near-ideal avalanche). All arithmetic wraps modulo 2**32. Where the namespace has
    native uint32 arithmetic (NumPy, CuPy, array-api-strict) it runs in uint32;
    PyTorch runs the same hash in int32 (two's complement wrap, logical shifts by
    masking), which yields the same bits.

Floats
    Uniforms and normals are computed in float64 with only correctly rounded
    operations (+, -, *, /) evaluated in a fixed order, then rounded once to
    the requested dtype, so they too are bit-identical across backends. The normal
    uses Box-Muller with this module's own ``log``, ``cos`` and ``sqrt`` (range
    reduction plus a fixed polynomial or Newton steps), because the libraries'
    versions differ in the last bit (PyTorch's CPU ``sqrt`` is not even correctly
    rounded). On a CPU, large draws are computed in blocks of ``_BLOCK`` elements so
    that the many elementwise passes stay in cache; the blocks change no bit.

Fast path
    A backend may register a kernel ``normal`` (see ``backends/``) computing the same bits
    with the same floating-point operations in the same order; NumPy does, in preallocated
    blocks. ``XPNET_FAST_PATHS=0`` uses the code below everywhere.

Streams (see :data:`STREAMS`, the one table of them): the k-th Dense layer of a network
(depth-first) initializes from ``(seed, STREAMS["init"] + k, 0)``; the k-th Dropout layer's
``c``-th training forward draws ``(seed, STREAMS["dropout"] + k, c)``; the epoch ``e`` shuffle is
``(seed, STREAMS["shuffle"], e)``; the validation split is ``(seed, STREAMS["split"], 0)``; a
streamed X (memmap, Dask) orders its blocks by ``(seed, STREAMS["blocks"], e)`` and shuffles block
b's rows by ``(seed, STREAMS["window"], e * blocks + b)``;
gradient checks draw their random directions from ``STREAMS["check"]`` (never used by training).
Streams count layers of their own kind only, so inserting a BatchNorm or an activation moves none.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import array_api_compat

from ._xp import Array, fast_path, has_unsigned_arithmetic

__all__ = ["STREAMS", "key", "random_bits", "uniform", "normal", "permutation", "dropout_keep",
           "dropout_keep_keyed", "key_words"]

# The one table of stream bases; a layer adds its ordinal among layers of its kind.
STREAMS = {"init": 1 << 16, "dropout": 2 << 16, "shuffle": 3 << 16, "split": 4 << 16, "blocks": 5 << 16,
           "window": 6 << 16, "check": 9 << 16}

_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1
# lowbias32 constants (C. Wellons, "hash prospector").
_C1 = 0x7FEB352D
_C2 = 0x846CA68B
# Elements per block of a float draw on a CPU: its float64 temporaries stay in the L2 cache.
_BLOCK = 1 << 16


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def key(seed: int, stream: int, counter: int) -> tuple[int, int]:
    """Two 32-bit key words for ``(seed, stream, counter)`` (host integers)."""
    for name, v in (("seed", seed), ("stream", stream), ("counter", counter)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"random key {name} must be a non-negative int, got {v!r}")
    x = _splitmix64(_splitmix64(_splitmix64(seed & _M64) ^ (stream & _M64)) ^ (counter & _M64))
    return x & _M32, x >> 32


def _word(v: int | Array, unsigned: bool) -> int | Array:
    """A 32-bit pattern as a Python int that fits the working dtype (uint32 or int32); a device word (already
    in the working dtype, see :func:`key_words`) as it is."""
    if not isinstance(v, int):
        return v
    return v if unsigned or v < (1 << 31) else v - (1 << 32)


def key_words(xp: Any, seed: int, stream: int, counters: Sequence[int], device: Any = None) -> Array:
    """The key words of ``(seed, stream, c)`` for each c in ``counters`` as a device array of shape
    ``(len(counters), 2)`` in the working dtype (uint32, or int32 holding the same bits on PyTorch).

    Its rows can stand in for the host words ``k0, k1`` (:func:`dropout_keep_keyed`): a captured
    CUDA graph reads the key of its step from device memory, so a replay needs no host work.
    """
    unsigned = has_unsigned_arithmetic(xp)
    flat = [_word(w, unsigned) for c in counters for w in key(seed, stream, c)]
    words = xp.asarray(flat, dtype=xp.uint32 if unsigned else xp.int32, device=device)
    return xp.reshape(words, (len(counters), 2))


def _hash(x: Array, unsigned: bool) -> Array:
    """lowbias32 in place: x ^= x>>16; x *= C1; x ^= x>>15; x *= C2; x ^= x>>16 (mod 2**32)."""
    if unsigned:
        x ^= x >> 16
        x *= _C1
        x ^= x >> 15
        x *= _C2
        x ^= x >> 16
    else:  # int32: arithmetic shift, so mask to make it logical
        x ^= (x >> 16) & 0xFFFF
        x *= _word(_C1, False)
        x ^= (x >> 15) & 0x1FFFF
        x *= _word(_C2, False)
        x ^= (x >> 16) & 0xFFFF
    return x


def _check_count(n: int) -> None:
    if n >= 1 << 31:
        raise ValueError(f"random_bits: n={n} exceeds 2**31 - 1 elements per draw")


def _words(xp: Any, start: int, count: int, k0: int | Array, k1: int | Array, device: Any) -> Array:
    """The words of elements ``start .. start + count - 1``: h(h(i + k0) ^ k1) (``k0``, ``k1``: host ints or
    0-d device words from :func:`key_words`)."""
    unsigned = has_unsigned_arithmetic(xp)
    x = xp.arange(start, start + count, dtype=xp.uint32 if unsigned else xp.int32, device=device)
    x += _word(k0, unsigned)
    x = _hash(x, unsigned)
    x ^= _word(k1, unsigned)
    return _hash(x, unsigned)


def random_bits(xp: Any, n: int, seed: int, stream: int, counter: int, device: Any = None) -> Array:
    """``n`` random 32-bit words for key ``(seed, stream, counter)``, shape ``(n,)``.

    dtype is uint32 where the namespace supports it, else int32 holding the same bits.
    """
    _check_count(n)
    return _words(xp, 0, n, *key(seed, stream, counter), device)


def _unsigned_int64(xp: Any, bits: Array) -> Array:
    """The 32-bit words as non-negative int64 values in [0, 2**32)."""
    x = xp.astype(bits, xp.int64)
    return x if bits.dtype == xp.uint32 else x & _M32


def _float64(xp: Any, bits: Array) -> Array:
    """The 32-bit words as float64 values in [0, 2**32) (exact)."""
    return xp.astype(bits if bits.dtype == xp.uint32 else _unsigned_int64(xp, bits), xp.float64)


def _blockwise(xp: Any, n: int, dtype: Any, device: Any, block: Callable[[int, int], Array]) -> Array:
    """``block(a, b)`` (elements a..b-1 of a draw of n) over the whole draw, shape ``(n,)``.

    One block on a GPU (each operation is a kernel launch); blocks of ``_BLOCK`` on a CPU.
    """
    on_gpu = array_api_compat.is_cupy_namespace(xp) or getattr(device, "type", "cpu") != "cpu"
    if on_gpu or n <= _BLOCK:
        return block(0, n)
    out = xp.empty(n, dtype=dtype, device=device)
    for a in range(0, n, _BLOCK):
        b = min(a + _BLOCK, n)
        out[a:b] = block(a, b)
    return out


def uniform(xp: Any, shape: tuple[int, ...], seed: int, stream: int, counter: int = 0,
            low: float = 0.0, high: float = 1.0, dtype: Any = None, device: Any = None) -> Array:
    """Uniform samples ``low + (high - low) * u``, u = (N + 0.5)/2**32 in (0, 1).

    Computed in float64 and rounded once to ``dtype`` (default float32); the rounding
    can land exactly on ``low`` or ``high`` (in float32 with probability ~3e-8 per draw).
    """
    n = math.prod(shape)
    dtype = dtype or xp.float32
    _check_count(n)
    k0, k1 = key(seed, stream, counter)

    def block(a: int, b: int) -> Array:
        u = _float64(xp, _words(xp, a, b - a, k0, k1, device))
        u += 0.5
        u *= 2.0**-32  # exact: (N + 0.5) / 2**32
        u *= high - low
        u += low
        return xp.astype(u, dtype)

    return xp.reshape(_blockwise(xp, n, dtype, device, block), shape)


# ---- reproducible log, sqrt and cos from correctly rounded operations --------------
_LN2 = 0.6931471805599453
_SQRT2 = 1.4142135623730951


def _log_of_positive_integer_plus_half(xp: Any, v: Array) -> Array:
    """log(v) for float64 v in [0.5, 2**32), from +, -, *, / only.

    Range reduction v = m * 2**e with m in (sqrt(2)/2, sqrt(2)], then
    log(m) = 2 artanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m - 1)/(m + 1), |s| < 0.172,
    summed by Horner in s^2 from the s^23 term down. Returns e*ln2 + 2*s*poly.
    """
    e = xp.zeros_like(v)
    m = v
    for k in (16, 8, 4, 2, 1):
        big = m >= 2.0**k
        m = xp.where(big, m * 2.0**-k, m)
        e = xp.where(big, e + k, e)
    low = m < 1.0  # only v = 0.5 lands here
    m = xp.where(low, m * 2.0, m)
    e = xp.where(low, e - 1.0, e)
    big = m > _SQRT2
    m = xp.where(big, m * 0.5, m)
    e = xp.where(big, e + 1.0, e)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    poly = s2 * (1.0 / 23.0)
    poly += 1.0 / 21.0
    for j in range(19, 0, -2):
        poly *= s2
        poly += 1.0 / j
    return e * _LN2 + 2.0 * s * poly


def _sqrt_small(xp: Any, x: Array) -> Array:
    """sqrt(x) for float64 x in [2**-40, 64), from +, *, / only (library sqrt differs by backend).

    Range reduction x = m * 4**e with m in [1/4, 4), five Newton steps y <- (y + m/y)/2
    from the linear first guess y = 0.35 m + 0.6, then y * 2**e.
    """
    m, scale = x, xp.ones_like(x)
    for k in (16, 8, 4, 2, 1):
        small = m < 4.0**-k
        m = xp.where(small, m * 4.0**k, m)
        scale = xp.where(small, scale * 2.0**-k, scale)
    for k in (2, 1):
        big = m >= 4.0**k
        m = xp.where(big, m * 4.0**-k, m)
        scale = xp.where(big, scale * 2.0**k, scale)
    y = m * 0.35
    y += 0.6
    for _ in range(5):
        y += m / y
        y *= 0.5
    return y * scale


def _cos_2pi(xp: Any, words: Array) -> Array:
    """cos(2 pi N / 2**32) for 32-bit words N, via quadrant + Taylor series on [0, pi/2).

    theta = (N mod 2**30) * pi/2 / 2**30 and t2 = theta**2; cos(theta) and sin(theta)/theta
    are summed by Horner in t2 (steps p <- c_j - t2 p, from the theta**22 and theta**23
    terms down); quadrant N >> 30 picks cos, -sin, -cos or sin.
    """
    n = _unsigned_int64(xp, words)
    quadrant = n >> 30
    theta = xp.astype(n & ((1 << 30) - 1), xp.float64) * (math.pi / 2.0 * 2.0**-30)
    minus_t2 = -(theta * theta)  # c - t2 p == c + (-t2) p exactly: Horner in place
    cos_p = minus_t2 * (1.0 / math.factorial(22))
    sin_p = minus_t2 * (1.0 / math.factorial(23))
    cos_p += 1.0 / math.factorial(20)
    sin_p += 1.0 / math.factorial(21)
    for j in range(18, -1, -2):  # alternating series, Horner in theta**2
        cos_p *= minus_t2
        cos_p += 1.0 / math.factorial(j)
        sin_p *= minus_t2
        sin_p += 1.0 / math.factorial(j + 1)
    sin_p *= theta
    c = xp.where((quadrant & 1) == 1, sin_p, cos_p)
    return xp.where((quadrant == 1) | (quadrant == 2), -c, c)


def _box_muller(xp: Any, words1: Array, words2: Array) -> Array:
    """sqrt(-2 log u1) cos(2 pi u2) in float64, u1 = (N1 + 0.5)/2**32 and u2 = N2/2**32."""
    v = _float64(xp, words1)
    v += 0.5
    log_u1 = _log_of_positive_integer_plus_half(xp, v) - 32.0 * _LN2
    return _sqrt_small(xp, -2.0 * log_u1) * _cos_2pi(xp, words2)


def normal(xp: Any, shape: tuple[int, ...], seed: int, stream: int, counter: int = 0,
           std: float = 1.0, dtype: Any = None, device: Any = None) -> Array:
    """Normal samples N(0, std**2) by Box-Muller: sqrt(-2 log u1) cos(2 pi u2).

    Element i of a draw of n uses words i (N1) and n + i (N2) of the key's stream;
    u1 = (N1 + 0.5)/2**32, so |z| <= 6.8. Computed in float64 from correctly rounded
    operations only (no library log/cos/sqrt), then ``z * std`` is rounded once to
    ``dtype`` (default float32).
    """
    n = math.prod(shape)
    dtype = dtype or xp.float32
    _check_count(2 * n)
    k0, k1 = key(seed, stream, counter)
    fast = fast_path(xp, "normal")
    if fast is not None:
        return xp.reshape(fast(n, k0, k1, std, dtype), shape)

    def block(a: int, b: int) -> Array:
        words1 = _words(xp, a, b - a, k0, k1, device)
        words2 = _words(xp, n + a, b - a, k0, k1, device)
        return xp.astype(_box_muller(xp, words1, words2) * std, dtype)

    return xp.reshape(_blockwise(xp, n, dtype, device, block), shape)


def permutation(xp: Any, n: int, seed: int, stream: int, counter: int = 0, device: Any = None) -> Array:
    """A random permutation of ``range(n)`` (int64), by sorting unique random keys.

    Keys are ``(31 random bits) * 2**32 + i``: all distinct, so any sort gives the
    same permutation on every backend.
    """
    bits = random_bits(xp, n, seed, stream, counter, device)
    keys = ((_unsigned_int64(xp, bits) >> 1) << 32) + xp.arange(n, dtype=xp.int64, device=device)
    return xp.argsort(keys)


def dropout_keep(xp: Any, shape: tuple[int, ...], rate: float, seed: int, stream: int, counter: int,
                 device: Any = None, offset: int = 0, total: int | None = None) -> Array:
    """Boolean keep-mask with P(drop) = round(rate * 2**16) / 2**16.

    Each 32-bit word gives two 16-bit uniforms (low half for the first ceil(n/2)
    elements, high half for the rest), halving the hashing cost; element i is kept
    iff its u16 >= threshold (:func:`dropout_threshold`).

    ``offset``, ``total``: the mask is elements ``offset .. offset + n - 1`` of the mask of a
    draw of ``total`` elements (a data-parallel rank's rows of the global batch's mask), its
    words drawn from that offset; by default the whole draw (``total`` = n).
    """
    return dropout_keep_keyed(xp, shape, rate, key(seed, stream, counter), device, offset, total)


def dropout_keep_keyed(xp: Any, shape: tuple[int, ...], rate: float, k: tuple[int | Array, int | Array],
                       device: Any = None, offset: int = 0, total: int | None = None) -> Array:
    """:func:`dropout_keep` from the key words ``k = (k0, k1)``: host ints (:func:`key`) or 0-d device
    words (a row of :func:`key_words`); the same bits either way."""
    n = math.prod(shape)
    if offset or (total is not None and total != n):
        return xp.reshape(_keep_part(xp, n, rate, k, device, offset, total), shape)
    half = (n + 1) // 2
    _check_count(half)
    threshold = dropout_threshold(rate)
    bits = _words(xp, 0, half, *k, device)
    keep_lo = (bits & 0xFFFF) >= threshold
    bits = bits[:n - half]
    if bits.dtype == xp.uint32 and 0 <= threshold < 1 << 16:  # hi16 >= t  <=>  word >= t * 2**16
        keep_hi = bits >= threshold << 16
    else:
        keep_hi = ((bits >> 16) & 0xFFFF) >= threshold
    return xp.reshape(xp.concat([keep_lo, keep_hi]), shape)


def _keep_part(xp: Any, n: int, rate: float, k: tuple[Any, Any], device: Any, offset: int,
               total: int | None) -> Array:
    """Elements ``offset .. offset + n - 1`` of :func:`dropout_keep`'s flat mask of ``total`` elements."""
    total = n if total is None else total
    if offset < 0 or offset + n > total:
        raise ValueError(f"dropout_keep: elements {offset}..{offset + n - 1} are outside a mask of {total}")
    _check_count(total)
    half, threshold, stop = (total + 1) // 2, dropout_threshold(rate), offset + n
    lo_stop, hi_start = min(stop, half), max(offset, half)
    parts = []
    if lo_stop > offset:  # elements before ``half``: the low 16 bits of words offset..
        parts.append((_words(xp, offset, lo_stop - offset, *k, device) & 0xFFFF) >= threshold)
    if stop > hi_start:  # the rest: the high 16 bits of words hi_start - half..
        parts.append(((_words(xp, hi_start - half, stop - hi_start, *k, device) >> 16) & 0xFFFF) >= threshold)
    if not parts:
        return xp.zeros((0,), dtype=xp.bool, device=device)
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def dropout_threshold(rate: float) -> int:
    """The 16-bit threshold for drop probability ``rate``: drop iff u16 < threshold."""
    return int(round(rate * 65536.0))
