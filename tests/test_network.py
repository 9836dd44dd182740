"""Network construction and contract: output heads, open input widths, width errors, the Layout,
RNG streams per layer kind, config round trips, state dicts across backends, frozen_state, and
checkpoints (save/load/restore and exact resume) of BatchNorm + Residual + Dropout networks."""

from __future__ import annotations

import json

import numpy as np
import pytest

import xpnet
from backends import Backend
from tests.helpers import all_backends, assert_close, assert_equal, to_numpy
from xpnet import nn
from xpnet.nn import BatchNorm1d, Dense, Dropout, Residual, Sequential

INIT, DROPOUT = xpnet.random.STREAMS["init"], xpnet.random.STREAMS["dropout"]


def _host(a) -> np.ndarray:
    return np.array(to_numpy(a), copy=True)


def _data(n: int = 64, features: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.7)


def composite(backend="numpy", dtype="float32", seed=2) -> xpnet.Network:
    """BatchNorm + Residual (identity and projection) + Dropout, nested."""
    return xpnet.Network([
        Dense(4, 8, "relu"), BatchNorm1d(8), Dropout(0.2),
        Residual([Dense(8, 8, "tanh"), BatchNorm1d(8), Dense(8, 8)]),
        Dropout(0.1),
        Residual(Sequential([Dense(8, 6, "gelu"), Residual([Dense(6, 6, "sigmoid")])])),
        Dense(6, 3)], seed=seed, backend=backend, dtype=dtype)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg, f"not one line: {msg!r}"
    return msg


# ============================================================== output heads
def test_tutorial_list_makes_a_softmax_head() -> None:
    # numpy only: the head logic does not depend on the backend (tested on every backend below),
    # and drawing 235k initial weights with the portable generator takes seconds on torch:cpu
    net = xpnet.Network([Dense(784, 256, "relu"), Dense(256, 128, "relu"), Dense(128, 10, "softmax")])
    assert net.output == "softmax" and not net.output_auto
    assert len(net.layers) == 3 and net.layers[-1].head and not net.layers[0].head
    assert net.n_params == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    assert net.n_weights == 784 * 256 + 256 * 128 + 128 * 10
    X = np.random.default_rng(0).normal(size=(5, 784))
    z, p = _host(net.logits(X)), _host(net.forward(X))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=1e-5)  # softmax applied once
    loss, _, _ = net.loss_and_grads(X, np.arange(5))  # integer labels: the fused cross-entropy
    ref = -np.mean(np.log(p[np.arange(5), np.arange(5)]))
    assert float(to_numpy(loss)) == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_trailing_activation_layer_becomes_the_head(backend: Backend, head: str) -> None:
    k = 3 if head == "softmax" else 1
    trailing = nn.Softmax() if head == "softmax" else nn.Sigmoid()
    a = xpnet.Network([Dense(4, 8, "tanh"), Dense(8, k), trailing], seed=1, backend=backend)
    b = xpnet.Network([Dense(4, 8, "tanh"), Dense(8, k, head)], seed=1, backend=backend)
    nested = xpnet.Network([Dense(4, 8, "tanh"), Sequential([Dense(8, k), nn.make_activation(head)])],
                           seed=1, backend=backend)
    for net in (a, b, nested):
        assert net.output == head and isinstance(net.output_layer, type(trailing))
    assert len(a.layers) == 2 and not any(isinstance(layer, nn.Activation) for _, layer in nn.walk(a.root))
    X = np.random.default_rng(0).normal(size=(7, 4))
    assert_equal(a.params, b.params, backend=backend)
    assert_close(a.forward(X), b.forward(X), backend=backend)
    assert_close(nested.forward(X), b.forward(X), backend=backend)
    p = _host(a.forward(X))
    assert np.all((p > 0) & (p < 1)) and (head == "sigmoid" or np.allclose(p.sum(axis=1), 1, atol=1e-6))
    # an agreeing output= is accepted, a conflicting one is one line naming both
    assert xpnet.Network([Dense(4, k), nn.make_activation(head)], output=head, backend=backend).output == head
    other = "identity" if head == "softmax" else "softmax"
    for layers in ([Dense(4, k), nn.make_activation(head)], [Dense(4, k, head)]):
        with pytest.raises(ValueError) as exc:
            xpnet.Network(layers, output=other, backend=backend)
        msg = _one_line(exc)
        assert head in msg and other in msg


def test_output_auto_without_a_head() -> None:
    assert xpnet.Network([Dense(4, 1)]).output == "sigmoid"
    assert xpnet.Network([Dense(4, 3)]).output == "softmax"
    assert xpnet.Network([Dense(4, 3)], output="identity").output == "identity"
    net = xpnet.Network([Dense(4, 8, "relu"), nn.Tanh()])  # a trailing non-head activation stays a layer
    assert len(net.layers) == 2 and net.output == "softmax"


# ============================================================== open input width
@pytest.mark.parametrize("first", ["Dense(None, 8)", "Dense(8)"])
def test_open_input_width_builds_at_the_first_data(backend: Backend, first: str) -> None:
    layer = Dense(None, 8, "relu") if first == "Dense(None, 8)" else Dense(8, activation="relu")
    assert layer.n_in is None and layer.n_out == 8
    net = xpnet.Network([layer, BatchNorm1d(), Dense(3)], seed=4, backend=backend)
    assert net.n_inputs is None
    for name in ("params", "grads", "buffers", "layout"):
        with pytest.raises(AttributeError) as exc:
            getattr(net, name)
        assert "not built yet" in _one_line(exc) and name in str(exc.value)
    X = np.random.default_rng(0).normal(size=(6, 5))
    p = net.forward(X)  # builds for 5 features
    assert tuple(p.shape) == (6, 3) and net.n_inputs == 5
    assert tuple(net.weights[0].shape) == (5, 8) and tuple(net.weights[1].shape) == (8, 3)
    assert [e.name for e in net.layout.buffers] == ["1.running_mean", "1.running_var"]
    closed = xpnet.Network([Dense(5, 8, "relu"), BatchNorm1d(8), Dense(8, 3)], seed=4, backend=backend)
    assert_equal(net.params, closed.params, backend=backend)  # the same draws as a closed network
    with pytest.raises(ValueError) as exc:
        net.forward(X[:, :4])
    assert "5" in _one_line(exc) and "4" in str(exc.value)
    # fit builds it too
    fresh = xpnet.Network([Dense(8), Dense(3)], backend=backend)
    xpnet.fit(fresh, X, [0, 1, 2, 0, 1, 2], epochs=1, batch_size=3)
    assert fresh.n_inputs == 5 and fresh.n_params == 5 * 8 + 8 + 8 * 3 + 3


@pytest.mark.parametrize("layers, names", [
    (lambda: [Dense(4, 3), Dense(5, 2)], ["Dense(5, 2)", "3"]),
    (lambda: [Dense(4, 3), BatchNorm1d(5), Dense(5, 2)], ["BatchNorm1d(5)", "3"]),
    (lambda: [Dense(4, 3), Sequential([Dense(3, 3), Dense(4, 2)])], ["Dense(4, 2)", "3"]),
    (lambda: [Dense(4, 6), Residual([Dense(6, 6), Dense(5, 6)])], ["Dense(5, 6)", "6"]),
    (lambda: [Dense(4, 3), Residual([Dense(3, 4)], shortcut=Dense(3, 5))], ["Residual", "4", "5"]),
], ids=["dense", "batchnorm", "nested", "residual-body", "residual-shortcut"])
def test_width_mismatch_is_one_line_naming_the_layer(layers, names) -> None:
    with pytest.raises(ValueError) as exc:
        xpnet.Network(layers())
    msg = _one_line(exc)
    for name in names:
        assert name in msg, msg


# ============================================================== layout
def test_layout_order_and_paths(backend: Backend) -> None:
    net = composite(backend)
    entries = net.layout.params
    names = [e.name for e in entries]
    n_decay = sum(1 for e in entries if e.decay)
    # every W (L2) first, in depth-first order; then everything else
    assert names[:n_decay] == ["0.W", "3.body.0.W", "3.body.2.W", "5.body.0.W", "5.body.1.body.0.W",
                               "5.shortcut.W", "6.W"]
    assert all(e.decay for e in entries[:n_decay]) and not any(e.decay for e in entries[n_decay:])
    assert names[n_decay:] == ["0.b", "1.gamma", "1.beta", "3.body.0.b", "3.body.1.gamma", "3.body.1.beta",
                               "3.body.2.b", "5.body.0.b", "5.body.1.body.0.b", "5.shortcut.b", "6.b"]
    assert net.n_weights == net.layout.n_decay == sum(e.size for e in entries[:n_decay]) == entries[n_decay].offset
    offsets = [e.offset for e in entries]
    assert offsets[0] == 0 and all(a.stop == b.offset for a, b in zip(entries, entries[1:]))
    assert entries[-1].stop == net.n_params == int(net.params.shape[0])
    assert [e.name for e in net.layout.buffers] == ["1.running_mean", "1.running_var", "3.body.1.running_mean",
                                                    "3.body.1.running_var"]
    assert net.layout["5.body.1.body.0.W"].shape == (6, 6) and net.layout["5.shortcut.W"].shape == (8, 6)
    with pytest.raises(KeyError, match="no parameter or buffer named"):
        net.layout["9.W"]
    # named views write through to the flat buffer, and the layer sees them
    named = {name: (value, grad) for name, value, grad in net.named_params()}
    assert list(named) == names
    value = named["3.body.1.gamma"][0]
    value[...] = net.backend.asarray(np.full(8, 2.5), dtype="float32")
    e = net.layout["3.body.1.gamma"]
    assert np.all(_host(net.params)[e.offset:e.stop] == 2.5)
    assert np.all(_host(net.layers[3].body.layers[1].gamma) == 2.5)
    assert net.layout.locate(e.offset).name == "3.body.1.gamma"
    assert len(net.weights) == 7 and tuple(net.weights[-1].shape) == (6, 3)


# ============================================================== random streams
def _dense_weights(net: xpnet.Network) -> list[np.ndarray]:
    return [_host(w) for w in net.weights]


def test_inserting_layers_moves_no_dense_init_stream(backend: Backend) -> None:
    """Streams count per kind: BatchNorm, activations, Dropout and containers move no Dense stream."""
    base = [Dense(4, 6, "tanh"), Dense(6, 6, "relu"), Dense(6, 3)]
    variants = {
        "plain": lambda: base_copy(),
        "batchnorm": lambda: [Dense(4, 6, "tanh"), BatchNorm1d(6), Dense(6, 6, "relu"), BatchNorm1d(6), Dense(6, 3)],
        "activations": lambda: [Dense(4, 6, "tanh"), nn.GELU(), Dense(6, 6, "relu"), nn.Tanh(), Dense(6, 3)],
        "dropout": lambda: [Dropout(0.5), Dense(4, 6, "tanh"), Dropout(0.2), Dense(6, 6, "relu"), Dense(6, 3)],
        "nested": lambda: [Sequential([BatchNorm1d(4), Dense(4, 6, "tanh")]),
                           Residual([nn.ReLU(), Dense(6, 6, "relu")]), Dense(6, 3)],
    }

    def base_copy():
        return [nn.layer_from_config(layer.config()) for layer in base]

    ref = xpnet.Network(base_copy(), seed=9, backend="numpy")
    ref_w = _dense_weights(ref)
    for name, make in variants.items():
        net = xpnet.Network(make(), seed=9, backend=backend)
        got = _dense_weights(net)
        assert len(got) == 3, name
        for k, (w, r) in enumerate(zip(got, ref_w)):
            np.testing.assert_array_equal(w, r, err_msg=f"{name}: Dense {k}")
        dense_streams = sorted(s for p, s in net.streams.items() if s < DROPOUT)
        assert dense_streams == [INIT, INIT + 1, INIT + 2], name
    # a Dense inserted before them does move them (the ordinal is what counts)
    shifted = xpnet.Network([Dense(4, 4, "tanh"), Dense(4, 6, "tanh"), Dense(6, 6, "relu"), Dense(6, 3)], seed=9)
    assert not np.array_equal(_host(shifted.weights[1]), ref_w[0])


def test_dropout_masks_are_keyed_by_the_dropout_ordinal(backend: Backend) -> None:
    a = xpnet.Network([Dense(4, 8), Dropout(0.3), Dense(8, 8), Dropout(0.5), Dense(8, 2)], seed=5,
                      backend=backend)
    b = xpnet.Network([Dense(4, 8), BatchNorm1d(8), nn.ReLU(), Dropout(0.3),
                       Residual([Dense(8, 8, "tanh"), Dropout(0.5)]), Dense(8, 2)], seed=5, backend=backend)
    assert [layer.stream for layer in a.dropout_layers] == [DROPOUT, DROPOUT + 1]
    assert [layer.stream for layer in b.dropout_layers] == [DROPOUT, DROPOUT + 1]
    assert b.streams["4.body.1"] == DROPOUT + 1
    for k in range(2):
        for c in (0, 3):
            assert_equal(b.dropout_layers[k].mask((9, 8), b.dtype, c), a.dropout_layers[k].mask((9, 8), a.dtype, c),
                         backend=backend)
    m0 = _host(a.dropout_layers[0].mask((9, 8), a.dtype, 0))
    assert not np.array_equal(m0, _host(a.dropout_layers[1].mask((9, 8), a.dtype, 0)))  # other ordinal
    assert not np.array_equal(m0, _host(a.dropout_layers[0].mask((9, 8), a.dtype, 1)))  # other counter
    # a Dropout inserted in front takes ordinal 0 and moves the others
    c = xpnet.Network([Dropout(0.1), Dense(4, 8), Dropout(0.3), Dense(8, 2)], seed=5, backend=backend)
    assert [layer.stream for layer in c.dropout_layers] == [DROPOUT, DROPOUT + 1]
    assert not np.array_equal(_host(c.dropout_layers[1].mask((9, 8), c.dtype, 0)), m0)


# ============================================================== config round trip
NESTED = [
    lambda be, seed: composite(be, "float64", seed),
    lambda be, seed: xpnet.Network([
        Dense(None, 6, "leaky_relu"),
        Sequential([Residual(Sequential([Dense(6, 6, "sigmoid"), nn.Tanh()]),
                             shortcut=[Dense(6, 6), BatchNorm1d(6, eps=1e-3, momentum=0.3)]),
                    Dropout(0.4)]),
        Dense(6, 1)], output="identity", seed=seed, backend=be, dtype="float64"),
    lambda be, seed: xpnet.MLP([4, 8, 8, 8, 2], activation="gelu", dropout=[0.1, 0.2, 0.0], batchnorm=True,
                               residual=True, seed=seed, backend=be, dtype="float64"),
]


@pytest.mark.parametrize("make", NESTED, ids=["composite", "open-width-nested", "mlp-bn-residual"])
def test_config_round_trip(backend: Backend, make) -> None:
    net = make(backend, 13)
    if net.n_inputs is None:
        net.build(4)
    cfg = json.loads(json.dumps(net.config()))  # JSON all the way
    copy = nn.network_from_config(cfg, backend=backend)
    assert type(copy) is type(net) and copy.config() == net.config() and repr(copy) == repr(net)
    assert [e.describe() for e in copy.layout] == [e.describe() for e in net.layout]
    assert copy.streams == net.streams and copy.output == net.output and copy.counters == net.counters
    assert_equal(copy.params, net.params, backend=backend)
    assert_equal(copy.buffers, net.buffers, backend=backend)
    X = np.random.default_rng(1).normal(size=(5, 4))
    with net.frozen_state(), copy.frozen_state():
        assert_equal(copy.logits(X, training=True), net.logits(X, training=True), backend=backend)
    other_seed = nn.network_from_config(dict(cfg, seed=14), backend=backend)
    assert not np.array_equal(_host(other_seed.params), _host(net.params))


# ============================================================== state dicts across backends
def _trained(backend, dtype="float64") -> xpnet.Network:
    net = composite(backend, dtype)
    X, y = _data(48)
    xpnet.fit(net, X, y, optimizer=xpnet.Adam(lr=1e-2), epochs=2, batch_size=16)
    return net


@pytest.mark.parametrize("target", [b.spec for b in all_backends()])
def test_state_dict_across_backends(backend: Backend, target: str) -> None:
    src = _trained(backend)
    state = src.state_dict()
    assert set(state["buffers"]) == {"1.running_mean", "1.running_var", "3.body.1.running_mean",
                                     "3.body.1.running_var"}
    assert all(isinstance(v, np.ndarray) for v in list(state["params"].values()) + list(state["buffers"].values()))
    assert not np.allclose(state["buffers"]["1.running_var"], 1.0)  # training moved them
    dst = xpnet.Network.from_state_dict(state, backend=target)
    for name in ("params", "buffers"):
        np.testing.assert_array_equal(_host(getattr(dst, name)), _host(getattr(src, name)), err_msg=name)
    assert dst.counters == src.counters == [6, 6]
    X = _data(10, seed=3)[0]
    np.testing.assert_allclose(_host(dst.forward(X)), _host(src.forward(X)), rtol=1e-12, atol=1e-14)
    # into an existing network of the same architecture (another seed): everything is overwritten
    other = composite(target, "float64", seed=99)
    other.load_state_dict(state)
    assert_equal(other.params, _host(src.params), backend=target)
    assert_equal(other.buffers, _host(src.buffers), backend=target)
    # a snapshot: later training of the source does not change it
    before = state["buffers"]["1.running_mean"].copy()
    src.forward(X, training=True)
    np.testing.assert_array_equal(state["buffers"]["1.running_mean"], before)
    bad = dict(state, buffers={k: v[:-1] for k, v in state["buffers"].items()})
    with pytest.raises(ValueError, match="running_mean"):
        other.load_state_dict(bad)


# ============================================================== frozen_state
def test_frozen_state_restores_counters_buffers_and_grads(backend: Backend) -> None:
    net = composite(backend, "float64")
    X, y = _data(16)
    net.loss_and_grads(X, y)  # some state to keep
    counters, buffers, grads, params = net.counters, _host(net.buffers), _host(net.grads), _host(net.params)
    with net.frozen_state():
        net.loss_and_grads(X[:8], y[:8])
        net.forward(X, training=True)
        assert net.counters == [c + 2 for c in counters]
        assert not np.array_equal(_host(net.buffers), buffers) and not np.array_equal(_host(net.grads), grads)
    assert net.counters == counters
    np.testing.assert_array_equal(_host(net.buffers), buffers)
    np.testing.assert_array_equal(_host(net.grads), grads)
    np.testing.assert_array_equal(_host(net.params), params)
    with net.frozen_state(grads=False):
        net.loss_and_grads(X[:8], y[:8])
    assert net.counters == counters and not np.array_equal(_host(net.grads), grads)
    np.testing.assert_array_equal(_host(net.buffers), buffers)
    # restored on an exception too
    with pytest.raises(RuntimeError), net.frozen_state():
        net.forward(X, training=True)
        raise RuntimeError
    assert net.counters == counters
    # and the same training forward after it gives the same result as inside it
    with net.frozen_state():
        inside = _host(net.logits(X, training=True))
    np.testing.assert_array_equal(_host(net.logits(X, training=True)), inside)


# ============================================================== checkpoints
def test_checkpoint_save_load_restore(backend: Backend, tmp_path) -> None:
    net = _trained(backend, "float32")
    opt = xpnet.Adam(lr=1e-2)
    X, y = _data(48)
    xpnet.fit(net, X, y, optimizer=opt, epochs=1, batch_size=16)
    path = xpnet.checkpoint.save(tmp_path / "ck.npz", net, opt, epoch=3, extra={"note": "bn"})
    ck = xpnet.checkpoint.load(path)
    assert ck.format_version == xpnet.checkpoint.FORMAT_VERSION == 3 and ck.epoch == 3 and ck.extra == {"note": "bn"}
    assert [d["name"] for d in ck.meta["layout"]] == [e.name for e in net.layout]
    assert ck.meta["streams"] == net.streams and ck.meta["dropout_counters"] == net.counters
    for target in [b.spec for b in all_backends()]:
        model, restored_opt = ck.restore(backend=target)
        assert model.backend.spec == target and model.dtype_name == "float32"
        for name in ("params", "buffers"):
            np.testing.assert_array_equal(_host(getattr(model, name)), _host(getattr(net, name)),
                                          err_msg=f"{name} on {target}")
        assert model.counters == net.counters and model.config() == net.config()
        assert restored_opt.t == opt.t and set(restored_opt.state) == set(opt.state)
        for k in opt.state:
            np.testing.assert_array_equal(_host(restored_opt.state[k]), _host(opt.state[k]))
    # into an existing network on this backend
    fresh = composite(backend, "float32", seed=2)
    ck.restore(fresh)
    assert_equal(fresh.buffers, _host(net.buffers), backend=backend)
    assert_equal(fresh.params, _host(net.params), backend=backend)
    with pytest.raises(xpnet.checkpoint.CheckpointError, match="differ"):
        ck.restore(xpnet.Network([Dense(4, 8, "relu"), Dense(8, 3)], backend=backend))


def test_resume_is_bit_identical(backend: Backend, tmp_path) -> None:
    """fit with checkpoint= for 2 epochs, then resume= to 5, equals one run of 5 epochs (same backend)."""
    X, y = _data(60)
    kw = dict(batch_size=16, validation_split=0.2, l2=1e-3)
    whole = composite(backend, "float32")
    h_whole = xpnet.fit(whole, X, y, optimizer=xpnet.Adam(lr=1e-2), epochs=5, **kw)
    first = composite(backend, "float32")
    path = tmp_path / "run.npz"
    xpnet.fit(first, X, y, optimizer=xpnet.Adam(lr=1e-2), epochs=2, checkpoint=path, **kw)
    resumed = composite(backend, "float32", seed=2)
    h_res = xpnet.fit(resumed, X, y, epochs=5, resume=path, **kw)
    assert h_res["step_loss"] == h_whole["step_loss"]  # exact floats
    assert h_res["val_loss"] == h_whole["val_loss"] and h_res["loss"] == h_whole["loss"]
    np.testing.assert_array_equal(_host(resumed.params), _host(whole.params))
    np.testing.assert_array_equal(_host(resumed.buffers), _host(whole.buffers))
    assert resumed.counters == whole.counters == [15, 15]
    assert not np.array_equal(_host(whole.buffers), _host(composite(backend, "float32").buffers))


def test_resume_into_a_network_with_an_open_input_width(backend: Backend, tmp_path) -> None:
    """The same code run again (first layer ``Dense(8)``: width from the data) resumes exactly: the
    checkpoint builds the network for the saved width before checking and loading it."""
    def make():
        return xpnet.Network([Dense(8, activation="relu"), BatchNorm1d(), Dropout(0.2),
                              Residual([Dense(8, activation="tanh")]), Dense(3)], seed=3, backend=backend)

    X, y = _data(40)
    whole = make()
    h_whole = xpnet.fit(whole, X, y, epochs=4, batch_size=16)
    path = tmp_path / "open.npz"
    xpnet.fit(make(), X, y, epochs=2, batch_size=16, checkpoint=path)
    restored = make()
    assert restored.n_inputs is None
    xpnet.checkpoint.load(path).restore(restored)
    assert restored.n_inputs == 4 and restored.output == "softmax" and restored.counters == [6]
    resumed = make()
    h_res = xpnet.fit(resumed, X, y, epochs=4, batch_size=16, resume=path)
    assert h_res["step_loss"] == h_whole["step_loss"]
    np.testing.assert_array_equal(_host(resumed.params), _host(whole.params))
    np.testing.assert_array_equal(_host(resumed.buffers), _host(whole.buffers))
