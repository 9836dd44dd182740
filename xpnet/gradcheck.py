"""Finite-difference checks of the hand-derived gradients, for whole networks and single layers.

``gradcheck(model, X, y)`` compares the backward pass of an :class:`~xpnet.MLP` with
central differences ``(L(p + εe_j) - L(p - εe_j)) / 2ε`` in float64 (a float32 model is
checked through a float64 copy on the same backend, its parameters untouched), coordinate
by coordinate (all of them for small networks, a random subset for large ones), plus one
directional derivative along a random unit direction d, ``(L(p + εd) - L(p - εd)) / 2ε``
against ``g·d``, which covers every coordinate at once. Dropout layers are rewound before
every evaluation, so all evaluations see the same mask.

``check_layer(layer, x)`` does the same for any object following the layer contract
(``forward(x, training) -> (y, cache)``, ``backward(dy, cache) -> dx``): the scalar is
``L = Σ y ⊙ r`` for a fixed random r, so ``backward(r, cache)`` must return dL/dx; parameters
are found by name: an attribute ``P`` with a matching ``grad_P`` (like ``Dense.W``/``grad_W``).

Both return a :class:`GradcheckReport`: per-array relative errors, a verdict, and a
readable table (``print(report)``). An array passes when
``‖num - ana‖ ≤ rtol · max(‖num‖, ‖ana‖) + atol · sqrt(m)`` over its m checked coordinates
(atol absorbs the rounding noise of the differences, about 1e-16·|L|/ε per coordinate).
"""
from __future__ import annotations

import math
import random as _pyrandom
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


from . import layers as L
from . import random as xrandom
from ._xp import Array, device, fetch, namespace
from .losses import l2_penalty

__all__ = ["gradcheck", "check_layer", "GradcheckReport", "CheckRow", "FULL_CHECK_LIMIT"]

# Above this many parameters, gradcheck(n_coords=None) checks a random subset.
FULL_CHECK_LIMIT = 2000
_DEFAULT_SUBSET = 200
_STREAM = 9 << 16  # xpnet.random stream of the random directions (unused by training)


@dataclass
class CheckRow:
    """The comparison for one array (or the directional derivative)."""

    name: str
    shape: tuple[int, ...]
    checked: int
    total: int
    max_abs_err: float
    rel_err: float
    numeric_norm: float
    analytic_norm: float
    passed: bool
    note: str = ""


@dataclass
class GradcheckReport:
    """Result of :func:`gradcheck` / :func:`check_layer`; truthy when every check passed."""

    subject: str
    rows: list[CheckRow]
    eps: float
    rtol: float
    atol: float
    backend: str
    hints: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def failures(self) -> list[CheckRow]:
        return [r for r in self.rows if not r.passed]

    @property
    def max_rel_err(self) -> float:
        return max((r.rel_err for r in self.rows), default=0.0)

    def __bool__(self) -> bool:
        return self.passed

    def __getitem__(self, name: str) -> CheckRow:
        for r in self.rows:
            if r.name == name or r.name.split(" ")[0] == name:
                return r
        raise KeyError(name)

    def __str__(self) -> str:
        head = (f"gradcheck {self.subject}: " + ("PASSED" if self.passed else
                f"FAILED ({len(self.failures)} of {len(self.rows)} checks over tolerance)")
                + f"  [float64 on {self.backend}, eps={self.eps:g}, rtol={self.rtol:g}, atol={self.atol:g}]")
        cols = ("array", "shape", "checked", "max|num-ana|", "rel. error", "|num|", "|ana|", "result")
        body = [(r.name, "x".join(map(str, r.shape)) or "scalar",
                 "1 dir" if r.name == "directional derivative" else f"{r.checked}/{r.total}",
                 f"{r.max_abs_err:.2e}", f"{r.rel_err:.2e}", f"{r.numeric_norm:.3e}", f"{r.analytic_norm:.3e}",
                 ("ok" if r.passed else "FAIL") + (f" ({r.note})" if r.note else "")) for r in self.rows]
        widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
        fmt = "  ".join("{:<%d}" % w for w in widths)
        lines = [head] + [("  " + fmt.format(*b)).rstrip() for b in [cols] + body]
        return "\n".join(lines + [f"  -> {h}" for h in self.hints])

    __repr__ = __str__


# ---------------------------------------------------------------- shared machinery
def _unravel(j: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    idx = []
    for s in reversed(shape):
        j, r = divmod(j, s)
        idx.append(r)
    return tuple(reversed(idx))


def _pick(size: int, count: int | None, rng: _pyrandom.Random) -> list[int]:
    if count is None or count >= size:
        return list(range(size))
    return sorted(rng.sample(range(size), count))


def _row(name: str, shape: tuple[int, ...], total: int, num: list[float], ana: list[float], rtol: float,
         atol: float, note: str = "") -> CheckRow:
    diff = [a - b for a, b in zip(num, ana)]
    err = math.sqrt(math.fsum(d * d for d in diff))
    nn, na = math.sqrt(math.fsum(v * v for v in num)), math.sqrt(math.fsum(v * v for v in ana))
    ref = max(nn, na)
    finite = all(math.isfinite(v) for v in num + ana)
    rel = err / ref if ref > 0 else (0.0 if err == 0 else math.inf)
    ok = finite and err <= rtol * ref + atol * math.sqrt(max(len(num), 1))
    return CheckRow(name, tuple(shape), len(num), total, max((abs(d) for d in diff), default=0.0),
                    rel if finite else math.nan, nn, na, ok, note if finite else "non-finite values")


class _Perturbable:
    """Finite differences over a list of named float64 device arrays, perturbed in place."""

    def __init__(self, xp: Any, loss: Callable[[], Array], eps: float):
        self.xp, self.loss, self.eps = xp, loss, eps

    def coordinates(self, arr: Array, coords: list[int]) -> list[Array]:
        """[(L(+ε) - L(-ε)) / 2ε for each flat coordinate] as 0-d device arrays."""
        out = []
        shape = tuple(arr.shape)
        for j in coords:
            idx = _unravel(j, shape)
            orig = arr[idx] * 1.0
            arr[idx] = orig + self.eps
            up = self.loss()
            arr[idx] = orig - self.eps
            down = self.loss()
            arr[idx] = orig
            out.append((up - down) / (2.0 * self.eps))
        return out

    def directional(self, arrays: list[Array], directions: list[Array]) -> Array:
        saved = [a * 1.0 for a in arrays]
        for a, s, d in zip(arrays, saved, directions):
            a[...] = s + self.eps * d
        up = self.loss()
        for a, s, d in zip(arrays, saved, directions):
            a[...] = s - self.eps * d
        down = self.loss()
        for a, s in zip(arrays, saved):
            a[...] = s
        return (up - down) / (2.0 * self.eps)


def _check(xp: Any, fd: _Perturbable, named: list[tuple[str, Array, Array]], n_coords: int | None,
           seed: int, rtol: float, atol: float, dev: Any) -> list[CheckRow]:
    """Per-array coordinate checks plus one directional derivative; one transfer at the end."""
    rng = _pyrandom.Random(seed)
    per_array = None if n_coords is None else max(1, math.ceil(n_coords / max(len(named), 1)))
    picks, numeric, analytic = [], [], []
    for _, arr, grad in named:
        size = math.prod(arr.shape)
        coords = _pick(size, per_array, rng)
        picks.append((coords, size))
        nums = fd.coordinates(arr, coords)
        numeric.append(xp.stack(nums) if nums else xp.zeros((0,), dtype=xp.float64, device=dev))
        flat = xp.reshape(grad, (-1,))
        analytic.append(xp.take(flat, xp.asarray(coords, dtype=xp.int64, device=dev)))
    # directional derivative along a random unit vector over every array
    total = sum(math.prod(a.shape) for _, a, _ in named)
    d = xrandom.normal(xp, (total,), seed, _STREAM, 0, dtype=xp.float64, device=dev)
    d = d / xp.sqrt(xp.vecdot(d, d))
    dirs, off = [], 0
    for _, a, _ in named:
        m = math.prod(a.shape)
        dirs.append(xp.reshape(d[off:off + m], tuple(a.shape)))
        off += m
    num_dir = fd.directional([a for _, a, _ in named], dirs)
    ana_dir = xp.vecdot(xp.concat([xp.reshape(g, (-1,)) for _, _, g in named]), d)
    host = fetch(xp, numeric + analytic + [num_dir, ana_dir], xp.float64)
    k = len(named)
    rows = []
    for i, (name, arr, _) in enumerate(named):
        coords, size = picks[i]
        rows.append(_row(name, tuple(arr.shape), size, host[i], host[k + i], rtol, atol,
                         "" if len(coords) == size else "random subset"))
    rows.append(_row("directional derivative", (total,), total, host[2 * k], host[2 * k + 1], rtol, atol,
                     "random unit direction, all coordinates"))
    return rows


def _float64_ok(xp: Any, dev: Any) -> None:
    if "float64" not in xp.__array_namespace_info__().dtypes(device=dev, kind="real floating"):
        raise ValueError(f"gradcheck needs float64, which {xp.__name__} does not support on {dev}")


# ---------------------------------------------------------------- whole networks
def _float64_copy(model: Any) -> Any:
    """A float64 copy of ``model`` on its backend; layers of types MLP does not build are carried over."""
    copy = type(model).from_state_dict(model.state_dict(), backend=model.backend, dtype="float64")
    if len(copy.layers) != len(model.layers):
        raise ValueError("gradcheck: model.layers does not have the layout MLP builds; cast the model to "
                         "float64 yourself (MLP(..., dtype='float64')) and check custom layers with check_layer")
    copy.layers = [new if type(new) is type(old) else old for old, new in zip(model.layers, copy.layers)]
    if type(copy.output_layer) is not type(model.output_layer):
        copy.output_layer = model.output_layer
    return copy


def _near_kinks(model: Any, Xd: Array, tol: float) -> int:
    """Number of pre-activations of kinked activations (ReLU, LeakyReLU) with |z| <= tol."""
    xp, a, counts = model.xp, Xd, []
    for layer, after in zip(model.layers, model.layers[1:] + [None]):
        a, _ = layer.forward(a, True)
        if isinstance(layer, L.Dense) and isinstance(after, (L.ReLU, L.LeakyReLU)):
            counts.append(xp.count_nonzero(xp.abs(a) <= tol))
    return int(xp.sum(xp.stack(counts))) if counts else 0


def _suspects(model: Any, failing: list[int]) -> str:
    """Layers between the deepest failing Dense and the next Dense (where a backward bug must be)."""
    deepest, names, dense = max(failing), [], -1
    for i, layer in enumerate(model.layers):
        if isinstance(layer, L.Dense):
            dense += 1
        if dense == deepest:
            names.append(f"layers[{i}] {_layer_name(layer)}")
        elif dense == deepest + 1 and isinstance(layer, L.Dense):
            names.append(f"layers[{i}] {_layer_name(layer)} (its dx)")
    if deepest == len(model.weights) - 1:
        names.append(f"the output/loss ({model.output})")
    return ", ".join(names)


def _layer_name(layer: Any) -> str:
    if isinstance(layer, L.Dense):
        return f"Dense {layer.W.shape[0]}->{layer.W.shape[1]}"
    return type(layer).__name__


def gradcheck(model: Any, X: Any, y: Any, loss: str | None = None, l2: float = 0.0, eps: float = 1e-6,
              n_coords: int | None = None, seed: int = 0, rtol: float = 1e-6,
              atol: float = 1e-8) -> GradcheckReport:
    """Check ``model``'s backward pass against central finite differences in float64.

    The loss is what training minimizes: batch-mean ``loss`` (default: the output's) plus
    ``l2/2 ΣW²``, with dropout active and its masks frozen (counters rewound before every
    evaluation). ``n_coords``: coordinates checked, split evenly over the weight and bias
    arrays (None: all of them up to ``FULL_CHECK_LIMIT`` parameters, else 200). A
    directional derivative along a random unit direction is always checked too.
    ``model`` is not modified. Returns a :class:`GradcheckReport` (``print`` it).
    """
    xp, dev = model.xp, model.backend.device
    _float64_ok(xp, dev)
    m = _float64_copy(model)
    Xd, Yd = m.as_input(X), m.targets(y)
    fn, fused = m.loss_fn(loss)
    l2 = float(l2)
    counters = [layer.counter for layer in m.layers if hasattr(layer, "counter")]

    def rewind() -> None:
        for layer, c in zip((la for la in m.layers if hasattr(la, "counter")), counters):
            layer.counter = c

    def value() -> Array:
        rewind()
        z, _ = m._forward_train(Xd)
        v = fn(xp, z, Yd)[0] if fused else fn(xp, m.output_layer.forward(z)[0], Yd)[0]
        return v + l2_penalty(xp, m._flat_weights, l2)[0] if l2 else v

    rewind()
    m._step(Xd, Yd, fn, fused, l2)
    grads = m.grads * 1.0
    wg, bg = m._views(grads)
    named = []
    for i, (W, b) in enumerate(zip(m.weights, m.biases)):
        tag = f"(Dense {W.shape[0]}->{W.shape[1]})"
        named += [(f"W{i} {tag}", W, wg[i]), (f"b{i} {tag}", b, bg[i])]
    if n_coords is None and m.n_params > FULL_CHECK_LIMIT:
        n_coords = _DEFAULT_SUBSET
    rows = _check(xp, _Perturbable(xp, value, eps), named, n_coords, seed, rtol, atol, dev)
    report = GradcheckReport(f"MLP{m.sizes} ({m.activation}, output {m.output}, loss "
                             f"{loss or 'default'}{f', l2={l2:g}' if l2 else ''})", rows, eps, rtol, atol,
                             model.backend.spec)
    rewind()
    near = _near_kinks(m, Xd, 100.0 * eps)
    if near:
        report.hints.append(f"{near} hidden pre-activation(s) feeding ReLU/LeakyReLU lie within {100 * eps:g} "
                            f"of the kink at 0, where finite differences straddle it: a failure there can be "
                            f"spurious (try another batch)")
    failing = sorted({i // 2 for i, r in enumerate(rows[:-1]) if not r.passed})
    if failing:
        report.hints.append(f"deepest failing layer: Dense {failing[-1]}; the faulty backward is among: "
                            f"{_suspects(m, failing)} (gradients flow from the output down, so layers "
                            f"below a bug fail too)")
    elif not report.passed:
        report.hints.append("only the directional derivative fails: some coordinate outside the checked "
                            "subset is wrong; raise n_coords")
    return report


# ---------------------------------------------------------------- single layers
def _layer_params(layer: Any) -> list[str]:
    """Names P with a same-shaped array attribute grad_P (Dense: W, b)."""
    found = []
    for name, val in sorted(vars(layer).items()):
        g = getattr(layer, f"grad_{name}", None)
        if g is not None and hasattr(val, "shape") and hasattr(g, "shape") and tuple(val.shape) == tuple(g.shape):
            found.append(name)
    return found


def check_layer(layer: Any, x: Any, *, training: bool = True, eps: float = 1e-6, rtol: float = 1e-6,
                atol: float = 1e-8, n_coords: int | None = None, seed: int = 0) -> GradcheckReport:
    """Check ``layer.backward`` against central differences of ``L = Σ forward(x)[0] ⊙ r``.

    ``layer``: any object with ``forward(x, training) -> (y, cache)`` and
    ``backward(dy, cache) -> dx`` (dx may be None when the layer does not compute it);
    parameters ``P`` with gradient buffers ``grad_P`` are checked too (they are swapped
    for float64 copies during the check and put back afterwards). ``x``: a device array
    (its namespace and device are used; it is checked in float64). A ``counter`` attribute
    (dropout's mask counter) is rewound before every forward, so the mask stays fixed.
    """
    xp, dev = namespace(x), device(x)
    _float64_ok(xp, dev)
    x64 = xp.astype(x, xp.float64)  # a copy: perturbed in place below
    names = _layer_params(layer)
    saved = {n: getattr(layer, n) for n in names}
    saved.update({f"grad_{n}": getattr(layer, f"grad_{n}") for n in names})
    counter = getattr(layer, "counter", None)
    try:
        for n in names:
            setattr(layer, n, xp.astype(saved[n], xp.float64))
            setattr(layer, f"grad_{n}", xp.zeros(tuple(saved[n].shape), dtype=xp.float64, device=dev))

        def forward() -> tuple[Array, Any]:
            if counter is not None:
                layer.counter = counter
            return layer.forward(x64, training)

        y0, _ = forward()
        r = xrandom.normal(xp, tuple(y0.shape), seed, _STREAM + 1, 0, dtype=xp.float64, device=dev)

        def value() -> Array:
            return xp.sum(forward()[0] * r)

        _, cache = forward()
        dx = layer.backward(r, cache)
        named = [(n, getattr(layer, n), getattr(layer, f"grad_{n}") * 1.0) for n in names]
        if dx is not None:
            if tuple(dx.shape) != tuple(x64.shape):
                raise ValueError(f"{type(layer).__name__}.backward returned dx of shape {tuple(dx.shape)} "
                                 f"for x of shape {tuple(x64.shape)}")
            named.insert(0, ("dx", x64, dx))
        if not named:
            raise ValueError(f"{type(layer).__name__}.backward returned None and the layer has no parameters "
                             f"(P with grad_P): nothing to check")
        rows = _check(xp, _Perturbable(xp, value, eps), named, n_coords, seed, rtol, atol, dev)
    finally:
        for n, v in saved.items():
            setattr(layer, n, v)
        if counter is not None:
            layer.counter = counter
    report = GradcheckReport(f"{type(layer).__name__} on x{tuple(x64.shape)}", rows, eps, rtol, atol,
                             f"{xp.__name__.rsplit('.', 1)[-1]} {dev}")
    if dx is None:
        report.hints.append("backward returned None: dx not checked")
    bad = [r.name for r in report.failures if r.name != "directional derivative"]
    if bad:
        report.hints.append(f"{type(layer).__name__}.backward disagrees with finite differences for "
                            f"{', '.join(bad)}: re-derive it from forward (dL/dy = r is passed in)")
    return report
