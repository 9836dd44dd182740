"""xpnet.random: bit-identical draws on every backend, statistical quality, dtypes and devices.

Bit identity is checked against NumPy on every backend under test. The quality tests use
fixed keys, so they are deterministic (never flaky): a statistic either passes or fails
for that key, and the thresholds (5 sigma, p > 1e-3) leave ample room for a good
generator. Since the draws are bit-identical everywhere, quality is measured on NumPy.
"""

from __future__ import annotations

import hashlib
import itertools
import math

import numpy as np
import pytest
from scipy import stats

import backends
from tests.helpers import all_backends, to_numpy
from xpnet import random as xr

NP = backends.get("numpy")
# (seed, stream, counter): small, large, the library's own streams, adjacent counters.
KEYS = [
    (0, 0, 0),
    (0, 0, 1),
    (1, 0, 0),
    (42, xr.STREAMS["init"], 0),
    (42, xr.STREAMS["dropout"] + 1, 7),
    (2**40 + 3, xr.STREAMS["shuffle"], 123456),
    (2**64 - 1, 2**32 + 5, 2**63),
]
N_BITS = 1001  # odd, not a power of two
N_QUALITY = 10**6


def _bits(a) -> np.ndarray:
    """The raw bits of an array as unsigned integers of the same width."""
    a = np.ascontiguousarray(to_numpy(a))
    return a.view({1: np.uint8, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def _assert_on(backend, a, dtype_name: str) -> None:
    """``a`` is an array of ``backend`` on ``backend.device`` with dtype ``dtype_name``."""
    import array_api_compat

    assert array_api_compat.array_namespace(a) is backend.xp
    assert array_api_compat.device(a) == backend.device, (
        f"draw landed on {array_api_compat.device(a)!r}, asked for {backend.device!r}"
    )
    assert a.dtype == getattr(backend.xp, dtype_name), f"dtype {a.dtype}, expected {dtype_name}"


# --------------------------------------------------------------------------- bit identity
@pytest.mark.parametrize("key", KEYS, ids=str)
def test_random_bits_identical_across_backends(backend, key):
    ref = xr.random_bits(NP.xp, N_BITS, *key, device=NP.device)
    out = xr.random_bits(backend.xp, N_BITS, *key, device=backend.device)
    # uint32 where the namespace has unsigned arithmetic, int32 (same bits) on torch.
    expected = "int32" if backend.name == "torch" else "uint32"
    _assert_on(backend, out, expected)
    assert out.shape == (N_BITS,)
    np.testing.assert_array_equal(_bits(out), _bits(ref))
    assert len(np.unique(_bits(ref))) > N_BITS - 3  # not degenerate (birthday bound ~1e-4)


@pytest.mark.parametrize("key", KEYS, ids=str)
@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_floats_identical_across_backends(backend, dtype, kind, key):
    fn = getattr(xr, kind)
    kw = {"low": -0.5, "high": 3.0} if kind == "uniform" else {"std": 0.7}
    ref = fn(NP.xp, (31, 17), *key, dtype=NP.dtype(dtype), device=NP.device, **kw)
    out = fn(backend.xp, (31, 17), *key, dtype=backend.dtype(dtype), device=backend.device, **kw)
    _assert_on(backend, out, dtype)
    assert out.shape == (31, 17)
    np.testing.assert_array_equal(_bits(out), _bits(ref))
    # the float32 draw is the float64 draw rounded once
    if dtype == "float32":
        f64 = fn(backend.xp, (31, 17), *key, dtype=backend.dtype("float64"), device=backend.device, **kw)
        np.testing.assert_array_equal(to_numpy(out), to_numpy(f64).astype(np.float32))


@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_float_default_dtype_is_float32(backend, kind):
    out = getattr(xr, kind)(backend.xp, (5,), 3, 4, 5, device=backend.device)
    _assert_on(backend, out, "float32")


@pytest.mark.parametrize("n", [1, 2, 97, 1000])
@pytest.mark.parametrize("key", KEYS[:5], ids=str)
def test_permutation_identical_across_backends(backend, key, n):
    ref = xr.permutation(NP.xp, n, *key, device=NP.device)
    out = xr.permutation(backend.xp, n, *key, device=backend.device)
    _assert_on(backend, out, "int64")
    np.testing.assert_array_equal(to_numpy(out), to_numpy(ref))
    np.testing.assert_array_equal(np.sort(to_numpy(out)), np.arange(n))


@pytest.mark.parametrize("shape", [(1,), (7,), (33, 9), (4, 5, 6)])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("key", KEYS[:5], ids=str)
def test_dropout_keep_identical_across_backends(backend, key, rate, shape):
    ref = xr.dropout_keep(NP.xp, shape, rate, *key, device=NP.device)
    out = xr.dropout_keep(backend.xp, shape, rate, *key, device=backend.device)
    _assert_on(backend, out, "bool")
    assert tuple(out.shape) == shape
    np.testing.assert_array_equal(to_numpy(out), to_numpy(ref))


# Values recorded from the original generator (before the blocked portable code and the NumPy
# kernels): every backend, with fast paths on and off, must still produce exactly these bits.
PIN_KEY = (42, xr.STREAMS["init"], 0)
PINNED_DIGESTS = [  # (draw, sha256 of the array's bytes, first 16 hex digits)
    (lambda xp, d: xr.normal(xp, (300, 7), 7, 11, 3, std=0.7, device=d), "c85735901de818c9"),
    (lambda xp, d: xr.normal(xp, (70001,), 2**64 - 1, 2**32 + 5, 2**63, dtype=xp.float64, device=d),
     "a631997d40c32940"),
    (lambda xp, d: xr.uniform(xp, (300, 7), 7, 11, 3, low=-2.0, high=0.5, device=d), "8b14457f7a7d7c63"),
    (lambda xp, d: xr.uniform(xp, (70001,), 1, 2, 3, dtype=xp.float64, device=d), "cbf66ca4ffb91501"),
    (lambda xp, d: xr.dropout_keep(xp, (257, 129), 0.3, 5, xr.STREAMS["dropout"], 9, device=d),
     "dcc7f0c2438e4a3f"),
    (lambda xp, d: xr.permutation(xp, 1001, 3, xr.STREAMS["shuffle"], 4, device=d), "d369da6c5141c71b"),
    (lambda xp, d: xr.random_bits(xp, 1001, 0, 0, 1, device=d), "cf6d0fcf0a8e2f59"),
]


@pytest.mark.parametrize("fast_paths", ["1", "0"])
def test_pinned_values(backend, monkeypatch, fast_paths):
    monkeypatch.setenv("XPNET_FAST_PATHS", fast_paths)
    xp, dev = backend.xp, backend.device
    assert [float(v).hex() for v in to_numpy(xr.normal(xp, (4,), *PIN_KEY, dtype=xp.float64, device=dev))] == [
        "-0x1.594c905a37f69p-2", "-0x1.b42f847e486efp-1", "-0x1.90fe93271074dp-2", "-0x1.fbcdda4f118b8p-1"]
    uniform = xr.uniform(xp, (4,), *PIN_KEY, low=-0.5, high=3.0, dtype=xp.float64, device=dev)
    assert [float(v).hex() for v in to_numpy(uniform)] == [
        "0x1.df54533c00000p-4", "-0x1.75d449cf00000p-2", "-0x1.f2432b5d00000p-2", "-0x1.d61d389400000p-4"]
    assert _bits(xr.random_bits(xp, 4, *PIN_KEY, device=dev)).tolist() == [757170556, 165580035, 16462786,
                                                                          472723782]
    for draw, digest in PINNED_DIGESTS:
        a = to_numpy(draw(xp, dev))
        a = _bits(a) if a.dtype == np.int32 else a  # torch's words are int32 holding the same bits
        assert hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16] == digest


def test_draws_land_on_the_requested_device():
    """A non-default device (strict:device1) receives every kind of draw."""
    specs = [b for b in all_backends() if b.spec == "strict:device1"] or [
        b for b in all_backends() if b.spec != "numpy"
    ]
    if not specs:
        pytest.skip("no non-NumPy backend under test")
    b = specs[0]
    xp, dev = b.xp, b.device
    _assert_on(b, xr.random_bits(xp, 10, 1, 2, 3, device=dev), "int32" if b.name == "torch" else "uint32")
    _assert_on(b, xr.uniform(xp, (3, 4), 1, 2, 3, dtype=xp.float64, device=dev), "float64")
    _assert_on(b, xr.normal(xp, (3, 4), 1, 2, 3, dtype=xp.float32, device=dev), "float32")
    _assert_on(b, xr.permutation(xp, 10, 1, 2, 3, device=dev), "int64")
    _assert_on(b, xr.dropout_keep(xp, (3, 4), 0.5, 1, 2, 3, device=dev), "bool")


def test_bad_keys_raise_one_line_value_error():
    for bad in [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (1.5, 0, 0), (True, 0, 0), ("1", 0, 0)]:
        with pytest.raises(ValueError) as info:
            xr.random_bits(NP.xp, 4, *bad)
        assert "\n" not in str(info.value)


def test_keys_are_distinct():
    """Nearby (seed, stream, counter) triples give distinct key words (no trivial collisions)."""
    triples = list(itertools.product(range(8), [0, 1, *xr.STREAMS.values()], range(16)))
    keys = {xr.key(*t) for t in triples}
    assert len(keys) == len(triples)


# --------------------------------------------------------------------------- uniform quality
def _u(seed=7, stream=11, counter=0, n=N_QUALITY) -> np.ndarray:
    return to_numpy(xr.uniform(NP.xp, (n,), seed, stream, counter, dtype=np.float64))


@pytest.mark.parametrize("key", [(7, 11, 0), (0, xr.STREAMS["init"], 0), (123, 0, 99)], ids=str)
def test_uniform_moments_and_range(key):
    u = _u(*key)
    n = u.size
    assert 0.0 < u.min() and u.max() < 1.0
    # mean 1/2 (sd sqrt(1/12/n)), variance 1/12 (sd sqrt((1/80 - 1/144)/n)): within 5 sigma.
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 5 * math.sqrt((1 / 80 - 1 / 144) / n)
    # uniforms are (N + 0.5) / 2**32: exact in float64, so 2**32 u - 0.5 is an integer.
    np.testing.assert_array_equal(np.ldexp(u[:1000], 32) - 0.5, np.floor(np.ldexp(u[:1000], 32)))


@pytest.mark.parametrize("key", [(7, 11, 0), (1, xr.STREAMS["shuffle"], 5)], ids=str)
def test_uniform_chi_square_256_bins(key):
    u = _u(*key)
    counts = np.bincount((u * 256).astype(np.int64), minlength=256)
    assert counts.size == 256
    p = stats.chisquare(counts).pvalue
    print(f"chi-square 256 bins {key}: p = {p:.4g}")
    assert p > 1e-3
    # The second 8 bits too (low-order structure).
    counts2 = np.bincount((u * 65536).astype(np.int64) % 256, minlength=256)
    assert stats.chisquare(counts2).pvalue > 1e-3


@pytest.mark.parametrize("key", [(7, 11, 0), (3, xr.STREAMS["dropout"], 2)], ids=str)
def test_bit_balance(key):
    bits = _bits(xr.random_bits(NP.xp, N_QUALITY, *key)).astype(np.uint32)
    n = bits.size
    ones = np.array([np.count_nonzero((bits >> np.uint32(j)) & np.uint32(1)) for j in range(32)]) / n
    worst = np.abs(ones - 0.5).max()
    print(f"bit balance {key}: max |P(bit) - 1/2| = {worst:.2e} (5 sigma = {5 * 0.5 / math.sqrt(n):.2e})")
    assert worst < 5 * 0.5 / math.sqrt(n)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize(
    "key_a, key_b",
    [
        ((7, 11, 0), (7, 11, 1)),  # adjacent counters
        ((7, 11, 0), (7, 12, 0)),  # adjacent streams
        ((7, 11, 0), (8, 11, 0)),  # adjacent seeds
        ((0, xr.STREAMS["init"], 0), (0, xr.STREAMS["init"] + 1, 0)),  # layer 0 vs layer 1 init
        ((0, xr.STREAMS["dropout"], 0), (0, xr.STREAMS["shuffle"], 0)),
        ((0, 0, 0), (1, 0, 0)),
    ],
    ids=str,
)
def test_streams_are_uncorrelated(key_a, key_b):
    n = 200_000
    a, b = _u(*key_a, n=n), _u(*key_b, n=n)
    assert not np.array_equal(a, b)
    r = _corr(a, b)
    # elementwise correlation and a shifted one (element i vs i+1 of the other key)
    r_shift = _corr(a[:-1], b[1:])
    assert abs(r) < 5 / math.sqrt(n), r
    assert abs(r_shift) < 5 / math.sqrt(n), r_shift
    # the same value for the same index should almost never coincide
    assert np.count_nonzero(a == b) < 3


def test_adjacent_elements_are_uncorrelated():
    u = _u(n=N_QUALITY)
    for lag in (1, 2, 16):
        r = _corr(u[:-lag], u[lag:])
        assert abs(r) < 5 / math.sqrt(u.size - lag), (lag, r)
    # pairs (u_i, u_{i+1}) fill the unit square evenly: 16x16 chi-square
    pairs = (u[0::2] * 16).astype(int) * 16 + (u[1::2] * 16).astype(int)
    assert stats.chisquare(np.bincount(pairs, minlength=256)).pvalue > 1e-3


# --------------------------------------------------------------------------- normal quality
@pytest.mark.parametrize("key", [(7, 11, 0), (0, xr.STREAMS["init"] + 2, 0)], ids=str)
def test_normal_moments_and_ks(key):
    z = to_numpy(xr.normal(NP.xp, (N_QUALITY,), *key, dtype=np.float64))
    n = z.size
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1.0) < 5 * math.sqrt(2 / n)
    assert abs(stats.skew(z)) < 5 * math.sqrt(6 / n)
    assert abs(stats.kurtosis(z, fisher=False) - 3.0) < 5 * math.sqrt(24 / n)
    # Box-Muller with u1 >= 2**-33: |z| <= sqrt(2 * 33 ln 2) ~ 6.77
    assert np.abs(z).max() <= math.sqrt(2 * 33 * math.log(2)) + 1e-12
    ks = stats.kstest(z, "norm")
    print(f"KS N(0,1) {key}: D = {ks.statistic:.3g}, p = {ks.pvalue:.4g}")
    assert ks.pvalue > 1e-3


def test_normal_std_scales_exactly():
    z1 = to_numpy(xr.normal(NP.xp, (1000,), 5, 6, 7, dtype=np.float64))
    z3 = to_numpy(xr.normal(NP.xp, (1000,), 5, 6, 7, std=0.25, dtype=np.float64))
    np.testing.assert_array_equal(z3, z1 * 0.25)


def test_normal_reference_values_agree_with_libm():
    """The module's own log/cos/sqrt give Box-Muller values within a few ulps of libm's."""
    n = 100_000
    bits = _bits(xr.random_bits(NP.xp, 2 * n, 9, 8, 7)).astype(np.float64)
    u1, u2 = (bits[:n] + 0.5) * 2.0**-32, bits[n:] * 2.0**-32
    expected = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    z = to_numpy(xr.normal(NP.xp, (n,), 9, 8, 7, dtype=np.float64))
    np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- permutation
def test_permutation_is_a_permutation_and_changes_with_counter():
    n = 500
    perms = [to_numpy(xr.permutation(NP.xp, n, 3, xr.STREAMS["shuffle"], c)) for c in range(20)]
    for p in perms:
        np.testing.assert_array_equal(np.sort(p), np.arange(n))
        assert np.count_nonzero(p == np.arange(n)) < 10  # ~1 fixed point expected
    assert len({p.tobytes() for p in perms}) == len(perms)
    other_seed = to_numpy(xr.permutation(NP.xp, n, 4, xr.STREAMS["shuffle"], 0))
    assert not np.array_equal(other_seed, perms[0])


def test_permutation_is_uniform_over_small_n():
    """All 4! orderings appear about equally often over 4800 counters (chi-square)."""
    index = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    counts = np.zeros(24, dtype=np.int64)
    for c in range(4800):
        counts[index[tuple(to_numpy(xr.permutation(NP.xp, 4, 1, 2, c)).tolist())]] += 1
    assert stats.chisquare(counts).pvalue > 1e-3


def test_permutation_of_empty_and_one():
    assert to_numpy(xr.permutation(NP.xp, 0, 1, 2, 3)).shape == (0,)
    np.testing.assert_array_equal(to_numpy(xr.permutation(NP.xp, 1, 1, 2, 3)), [0])


# --------------------------------------------------------------------------- dropout_keep
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 0.5, 0.9])
def test_dropout_keep_fraction(rate):
    n = 400_001  # odd: the two 16-bit halves have different lengths
    keep = to_numpy(xr.dropout_keep(NP.xp, (n,), rate, 5, xr.STREAMS["dropout"], 3))
    p_drop = round(rate * 65536) / 65536  # documented quantization
    frac = keep.mean()
    sd = math.sqrt(p_drop * (1 - p_drop) / n)
    assert abs(frac - (1 - p_drop)) <= 5 * sd, (frac, 1 - rate)
    if rate == 0.0:
        assert keep.all()
    # both halves (low and high 16 bits of the same words) keep at the same rate,
    # and element i is independent of element i + half (same 32-bit word)
    half = (n + 1) // 2
    lo, hi = keep[:half - 1].astype(float), keep[half:].astype(float)
    for part in (lo, hi):
        assert abs(part.mean() - (1 - p_drop)) <= 5 * sd * math.sqrt(2) + 1e-12
    if 0.0 < rate:
        assert abs(_corr(lo, hi)) < 5 / math.sqrt(lo.size)


def test_dropout_keep_changes_with_counter_and_stream():
    a = to_numpy(xr.dropout_keep(NP.xp, (64, 64), 0.5, 1, xr.STREAMS["dropout"], 0))
    b = to_numpy(xr.dropout_keep(NP.xp, (64, 64), 0.5, 1, xr.STREAMS["dropout"], 1))
    c = to_numpy(xr.dropout_keep(NP.xp, (64, 64), 0.5, 1, xr.STREAMS["dropout"] + 1, 0))
    for x, y in [(a, b), (a, c), (b, c)]:
        agree = np.mean(x == y)
        assert abs(agree - 0.5) < 5 * 0.5 / 64, agree  # independent masks agree on half the entries
