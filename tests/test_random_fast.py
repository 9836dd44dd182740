"""xpnet.random's NumPy normal kernel and cache-sized blocks against its portable code, bit for bit.

The kernel (backends/_numpy_kernels.py) rewrites the range reductions with integer operations
on the float64 bits; the crafted words below put every such branch on both sides of its
boundaries (v = 0.5, powers of two, sqrt(2) 2^k, x = -2 log u1 near every power of two, the
four quadrants), which random keys would almost never reach.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import backends
from backends import _numpy_kernels as nk
from xpnet import random as xr

KEYS = [(0, 0, 0), (5, xr.STREAMS["init"] + 3, 0), (2**64 - 1, 2**32 + 5, 2**63)]
# around the kernels' block (2**14) and the portable code's (2**16)
SIZES = [0, 1, 2, 3, 1000, 2**14 - 1, 2**14, 2**14 + 1, 2**16 + 1, 2**17 + 5]


def _same(a, b) -> bool:
    a, b = backends.to_numpy(a), backends.to_numpy(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _both(monkeypatch, draw):
    """draw() with the fast paths on, then off."""
    monkeypatch.setenv("XPNET_FAST_PATHS", "1")
    fast = draw()
    monkeypatch.setenv("XPNET_FAST_PATHS", "0")
    return fast, draw()


def test_numpy_registers_the_normal_kernel(monkeypatch):
    assert backends.fast_path("numpy", "normal") is not None
    for spec in ("strict", "torch:cpu"):
        assert backends.fast_path(spec, "normal") is None
    for name in ("uniform", "dropout_keep"):  # the portable code is as fast: no kernels
        assert backends.fast_path("numpy", name) is None
    monkeypatch.setenv("XPNET_FAST_PATHS", "0")
    assert backends.fast_path("numpy", "normal") is None


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normal_kernel_matches_portable(monkeypatch, n, dtype):
    dt = getattr(np, dtype)
    for key in KEYS:
        for std in (1.0, 0.37):
            fast, portable = _both(monkeypatch, lambda: xr.normal(np, (n,), *key, std=std, dtype=dt))
            assert fast.dtype == dt and _same(fast, portable), (key, std)


@pytest.mark.parametrize("spec", ["numpy", "strict", "torch:cpu"])
@pytest.mark.parametrize("rate", [0.0, 1e-6, 0.1, 0.5, 0.99999, 1.0])
def test_dropout_keep_is_the_documented_formula(spec, rate):
    """keep = concat([lo16(words), hi16(words)])[:n] >= threshold, however it is computed."""
    if spec not in backends.available():
        pytest.skip(f"{spec} not available")
    be = backends.get(spec)
    for n in (1, 2, 7, 2 * 65536 + 3):
        for key in KEYS:
            words = backends.to_numpy(xr.random_bits(be.xp, (n + 1) // 2, *key, device=be.device))
            words = words.view(np.uint32)
            u16 = np.concatenate([words & 0xFFFF, words >> 16])[:n]
            keep = backends.to_numpy(xr.dropout_keep(be.xp, (n,), rate, *key, device=be.device))
            np.testing.assert_array_equal(keep, u16 >= xr.dropout_threshold(rate))
    if rate == 1.0:  # threshold 2**16: no 16-bit uniform reaches it
        assert not keep.any()


def _crafted_words() -> tuple[np.ndarray, np.ndarray]:
    """Words N1, N2 on both sides of every boundary of the kernel's integer rewrites."""
    n1 = {0, 1, 2, 3, 2**32 - 2, 2**32 - 1}
    for k in range(33):
        for c in (2**k, math.sqrt(2.0) * 2**k):  # v = N1 + 0.5 near 2^k and sqrt(2) 2^k
            n1.update(int(c) + d for d in range(-2, 3))
    for k in range(-34, 7):  # x = -2 log u1 near 2^k: u1 = exp(-2^(k-1))
        c = 2.0**32 * math.exp(-(2.0**(k - 1))) - 0.5
        n1.update(int(c) + d for d in range(-2, 3))
    n1 = np.array(sorted(v for v in n1 if 0 <= v < 2**32), dtype=np.uint32)
    corners = [q * 2**30 + d for q in range(4) for d in (0, 1, 2**29, 2**30 - 1)]
    n2 = np.resize(np.array(corners, dtype=np.uint32), n1.size)
    return n1, n2


def test_kernel_range_reductions_on_crafted_words():
    n1, n2 = _crafted_words()
    m = n1.size
    expected = xr._box_muller(np, n1, n2)
    w = np.stack([n1, n2])
    bufs = [np.empty((2, m), np.uint32)] + [np.empty((3, m)) for _ in range(3)]
    for std in (1.0, 0.37):
        got = nk._box_muller(w.copy(), *bufs, std)
        assert _same(got, expected * std)
    assert np.isfinite(expected).all() and np.abs(expected).max() <= math.sqrt(2 * 33 * math.log(2))


@pytest.mark.parametrize("spec", ["numpy", "strict"])
def test_blocks_change_no_bit(monkeypatch, spec):
    """The portable code's cache-sized blocks (shrunk to 7 elements here) give the one-block bits."""
    if spec not in backends.available():
        pytest.skip(f"{spec} not available")
    be = backends.get(spec)
    monkeypatch.setenv("XPNET_FAST_PATHS", "0")
    draws = [lambda: xr.normal(be.xp, (5, 11), 3, 4, 5, std=0.3, dtype=be.xp.float64, device=be.device),
             lambda: xr.uniform(be.xp, (5, 11), 3, 4, 5, low=-1.0, high=2.0, device=be.device)]
    whole = [d() for d in draws]
    monkeypatch.setattr(xr, "_BLOCK", 7)
    for d, w in zip(draws, whole):
        assert _same(d(), w)
