"""Training steps replayed from CUDA graphs (xpnet/train/graphed.py, backends/_graphs.py).

On CPU backends the recording is emulated: ``capture(step)`` runs the step once, and each "replay"
calls it again with everything a real replay cannot see made poisonous — the optimizer's ``lr`` and
``t`` are NaN and -1, the Dropout counters -1 (the key derivation refuses it), the schedule raises,
and on array-api-strict's ``device1`` every device-to-host transfer is counted and must not happen.
A step that read any of that host state, or the host at all, fails these tests; the graphed runs
must then equal eager runs bit for bit, on every CPU backend. On a GPU the real capture runs and
is compared with eager launches (masks bit-identical, losses within float tolerance).
"""
from __future__ import annotations

import logging
import math
import os
import signal

import numpy as np
import pytest

import backends
import xpnet
from tests.helpers import count_host_transfers, to_numpy
from xpnet import nn
from xpnet.optim import make_optimizer, make_schedule
from xpnet.train import graphed

RNG = np.random.default_rng(16)
X = RNG.normal(size=(203, 5)).astype(np.float64)
Y3 = np.argmax(X[:, :3] + 0.3 * RNG.normal(size=(203, 3)), axis=1)
YR = X[:, :1] - 2.0 * X[:, 1:2]


class _Poisoned:
    """A schedule that must not be called during a replay."""

    def __init__(self, inner):
        self.inner, self.armed = inner, False

    def __call__(self, t):
        if self.armed:
            raise AssertionError("a replayed step called the learning-rate schedule")
        return self.inner(t)


class EmulatedGraphs:
    """CUDA graph capture as a CPU backend can emulate it (module docstring)."""

    def __init__(self, transfers=None, fail=False, wrong=False, kill_after=None):
        self.transfers, self.fail, self.wrong = transfers, fail, wrong
        self.kill_after = kill_after  # SIGTERM to this process after that many replays
        self.captures = self.replays = 0
        self.steps = None  # the GraphedSteps being recorded (whose host state a replay must not read)

    def capture(self, step):
        step()  # the real step, as the backends' capture runs it
        if self.fail:
            raise backends.CaptureFailed("RuntimeError: operation not permitted when stream is capturing")
        self.captures += 1

        def replay():
            self.replays += 1
            model, trainer = self.steps.model, self.steps.trainer
            opt, schedule = trainer.optimizer, trainer.schedule
            saved = (opt.lr, opt.t, model.counters)
            opt.lr, opt.t, trainer.schedule = math.nan, -1, _refuse
            for layer in model.dropout_layers:
                layer.counter = -1
            if isinstance(schedule, _Poisoned):
                schedule.armed = True
            before = sum(self.transfers.values()) if self.transfers is not None else 0
            try:
                step()
                if self.wrong:  # a replay that lands somewhere else
                    model.params[...] = model.params * 1.5
            finally:
                opt.lr, opt.t, trainer.schedule = saved[0], saved[1], schedule
                for layer, c in zip(model.dropout_layers, saved[2]):
                    layer.counter = c
                if isinstance(schedule, _Poisoned):
                    schedule.armed = False
            if self.transfers is not None:
                assert sum(self.transfers.values()) == before, f"a replayed step read the host: {self.transfers}"
            if self.replays == self.kill_after:
                os.kill(os.getpid(), signal.SIGTERM)
        return replay


def _refuse(t):
    raise AssertionError("a replayed step called the trainer's schedule")


def _remember_steps(monkeypatch, keep):
    """Call ``keep(steps)`` with each GraphedSteps the loop makes while the test runs."""
    init = graphed.GraphedSteps.__init__

    def remembered(self, *args):
        init(self, *args)
        keep(self)

    monkeypatch.setattr(graphed.GraphedSteps, "__init__", remembered)


def _emulate(monkeypatch, backend, **kwargs):
    """Emulated CUDA graphs on ``backend`` (a CPU backend) while the test runs."""
    emu = EmulatedGraphs(**kwargs)
    _remember_steps(monkeypatch, lambda steps: setattr(emu, "steps", steps))
    monkeypatch.setattr(type(backend), "can_capture", property(lambda self: True))
    monkeypatch.setattr(type(backend), "capture", lambda self, step: emu.capture(step))
    return emu


CASES = {
    # name: (layers, y, optimizer, kwargs of fit)
    "adam-dropout-bn-cosine-clip": (
        lambda: [nn.Dense(5, 16, "relu"), nn.BatchNorm1d(16), nn.Dropout(0.3), nn.Dense(16, 12, "tanh"),
                 nn.Dropout(0.1), nn.Dense(12, 3)],
        Y3, ("adam", 0.01, {}), dict(batch_size=32, clip_norm=0.5, validation_data=(X[:40], Y3[:40]),
                                     schedule="cosine")),
    "nesterov-l2-no-shuffle-regression": (
        lambda: [nn.Dense(5, 8, "tanh"), nn.Dropout(0.2), nn.Dense(8, 1)],
        YR, ("nesterov", 0.02, {}), dict(batch_size=50, l2=1e-3, shuffle=False)),
    "adamw-residual": (
        lambda: [nn.Dense(5, 8, "relu"), nn.Residual([nn.Dense(8, 8, "relu"), nn.Dropout(0.25)]), nn.Dense(8, 3)],
        Y3, ("adamw", 0.01, {"weight_decay": 0.05}), dict(batch_size=64, clip_value=0.3)),
    "rmsprop-one-batch": (
        lambda: [nn.Dense(5, 6, "sigmoid"), nn.Dense(6, 3)],
        Y3, ("rmsprop", 0.01, {}), dict(batch_size=500)),
    "sgd-exact-batches": (
        lambda: [nn.Dense(5, 7, "relu"), nn.Dropout(0.5), nn.Dense(7, 3)],
        Y3, ("sgd", 0.1, {}), dict(batch_size=29)),  # 203 = 7 x 29: no smaller last batch
}


def _train(backend, dtype, case, epochs=3, **extra):
    layers, y, (opt_name, lr, opt_kwargs), kwargs = CASES[case]
    model = xpnet.Network(layers(), seed=5, backend=backend, dtype=dtype)
    opt = make_optimizer(opt_name, lr, **opt_kwargs)
    kwargs = dict(kwargs, **extra)
    if kwargs.get("schedule") == "cosine":
        kwargs["schedule"] = _Poisoned(make_schedule("cosine", lr, total_steps=20, warmup=3))
    history = xpnet.fit(model, X, y, optimizer=opt, epochs=epochs, **kwargs)
    return model, opt, history


def _same_run(a, b):
    (ma, oa, ha), (mb, ob, hb) = a, b
    assert {k: v for k, v in ha.items() if k != "time"} == {k: v for k, v in hb.items() if k != "time"}
    assert np.array_equal(to_numpy(ma.params), to_numpy(mb.params))
    assert np.array_equal(to_numpy(ma.buffers), to_numpy(mb.buffers))
    assert (oa.t, oa.lr, ma.counters) == (ob.t, ob.lr, mb.counters)
    assert sorted(oa.state) == sorted(ob.state)
    for name in oa.state:
        assert np.array_equal(to_numpy(oa.state[name]), to_numpy(ob.state[name])), name


def _cpu_only(backend):
    if backend.on_gpu:
        pytest.skip("the real capture is tested on GPUs below")


@pytest.mark.parametrize("case", sorted(CASES))
def test_replayed_steps_equal_eager_steps_bit_for_bit(backend, dtype, case, monkeypatch) -> None:
    _cpu_only(backend)
    eager = _train(backend, dtype, case)
    emu = _emulate(monkeypatch, backend)
    replayed = _train(backend, dtype, case)
    _same_run(replayed, eager)
    steps = 3 * math.ceil(203 / min(CASES[case][3]["batch_size"], 203))
    assert emu.captures == (1 if 203 % CASES[case][3]["batch_size"] in (0, 203) else 2)
    assert emu.replays == steps - emu.captures  # every other step is a replay (the checks included)
    assert all(d.key_source is None for d in replayed[0].dropout_layers)


def test_a_signal_between_replays_checkpoints_and_resumes_exactly(monkeypatch, tmp_path) -> None:
    from xpnet import checkpoint as ckpt

    backend = backends.get("numpy")
    eager = _train(backend, "float32", "adam-dropout-bn-cosine-clip", epochs=3)
    _emulate(monkeypatch, backend, kill_after=9)  # 7 steps an epoch, 5 replays in the first: epoch 2, step 4
    with pytest.raises(ckpt.Interrupted) as info:
        _train(backend, "float32", "adam-dropout-bn-cosine-clip", epochs=3, checkpoint=tmp_path / "c.npz")
    assert (info.value.epoch, info.value.step_in_epoch) == (1, 4)  # epochs completed, steps of the next
    saved = ckpt.load(tmp_path / "c.npz")
    assert saved.step == 11 and saved.meta["step_in_epoch"] == 4 and len(saved.meta["partial"]["step_loss"]) == 4
    _emulate(monkeypatch, backend)
    resumed = _train(backend, "float32", "adam-dropout-bn-cosine-clip", epochs=3, resume=saved)
    _same_run(resumed, eager)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_estimators_replay_their_steps_bit_for_bit(monkeypatch, solver) -> None:
    from xpnet.estimators import XPNetClassifier

    backend = backends.get("numpy")

    def run():
        est = XPNetClassifier(hidden_layer_sizes=(9,), solver=solver, batch_size=40, max_iter=6, random_state=0,
                              early_stopping=True, n_iter_no_change=20, backend=backend)
        return est.fit(X, Y3)

    eager = run()
    emu = _emulate(monkeypatch, backend)
    replayed = run()
    assert emu.replays > 0
    assert eager.loss_curve_ == replayed.loss_curve_ and eager.validation_scores_ == replayed.validation_scores_
    for a, b in zip(eager.coefs_ + eager.intercepts_, replayed.coefs_ + replayed.intercepts_):
        assert np.array_equal(a, b)


def test_a_replayed_step_reads_nothing_from_the_host(monkeypatch) -> None:
    pytest.importorskip("array_api_strict")
    backend = backends.get("strict:device1")
    counts = count_host_transfers(monkeypatch, backend)
    emu = _emulate(monkeypatch, backend, transfers=counts)
    _train(backend, "float32", "adam-dropout-bn-cosine-clip", epochs=2)
    assert emu.replays > 10
    assert counts, "the counter saw none of the epochs' transfers: it counts nothing"


@pytest.mark.parametrize("case, fault, lines, replays", [
    # a step that cannot be recorded: each batch size (32 and the last 11 rows) says so once and runs eagerly
    ("adam-dropout-bn-cosine-clip", "fail", ["could not record the training step (batch of 32 rows)",
                                             "could not record the training step (batch of 11 rows)"], 0),
    # a replay that lands elsewhere: the check undoes it and reruns the step eagerly; no replay after it
    ("sgd-exact-batches", "wrong", ["replay of the training step (batch of 29 rows) differs from the eager"], 1),
])
def test_a_faulty_recording_falls_back_to_eager_steps_with_one_log_line(monkeypatch, caplog, case, fault, lines,
                                                                        replays) -> None:
    backend = backends.get("numpy")
    eager = _train(backend, "float64", case)
    emu = _emulate(monkeypatch, backend, **{fault: True})
    with caplog.at_level(logging.WARNING, logger="xpnet"):
        replayed = _train(backend, "float64", case)
    _same_run(replayed, eager)
    said = [r.getMessage() for r in caplog.records if r.name == "xpnet"]
    assert len(said) == len(lines) and all(want in line and "eager launches" in line
                                           for want, line in zip(lines, said)), said
    assert emu.replays == replays


def test_a_kernel_that_reads_device_scalars_differently_turns_graphs_off(monkeypatch, caplog) -> None:
    from backends import _numpy_kernels

    real = _numpy_kernels.KERNELS["adam"]

    def lying_adam(p, g, m, v, beta1, beta2, step, eps):  # right with host floats, wrong with device scalars
        real(p, g, m, v, beta1, beta2, step, eps)
        if type(step) is not float:  # a table's value (numpy indexing gives numpy scalars)
            p -= 1e-3

    lying_adam.device_scalars = True
    monkeypatch.delenv("XPNET_FAST_PATHS", raising=False)  # the fused kernel is what this test is about
    monkeypatch.setitem(_numpy_kernels.KERNELS, "adam", lying_adam)
    backend = backends.get("numpy")
    eager = _train(backend, "float64", "adam-dropout-bn-cosine-clip")
    emu = _emulate(monkeypatch, backend)
    with caplog.at_level(logging.WARNING, logger="xpnet"):
        replayed = _train(backend, "float64", "adam-dropout-bn-cosine-clip")
    _same_run(replayed, eager)
    said = [r.getMessage() for r in caplog.records if r.name == "xpnet"]
    assert len(said) == 1 and "device scalars give other numbers" in said[0] and "eager launches" in said[0], said
    assert emu.captures == emu.replays == 0


def test_replayed_portable_steps_equal_eager_portable_steps(monkeypatch) -> None:
    monkeypatch.setenv("XPNET_FAST_PATHS", "0")  # no fused kernels: the portable update and mask, both ways
    backend = backends.get("numpy")
    eager = _train(backend, "float32", "adam-dropout-bn-cosine-clip")
    emu = _emulate(monkeypatch, backend)
    _same_run(_train(backend, "float32", "adam-dropout-bn-cosine-clip"), eager)
    assert emu.replays > 0


@pytest.mark.parametrize("why", ["lbfgs", "float16", "on_step"])
def test_runs_a_graph_cannot_replay_say_so_once_and_train_eagerly(monkeypatch, caplog, why) -> None:
    backend = backends.get("numpy")
    emu = _emulate(monkeypatch, backend)
    model = xpnet.MLP([5, 4, 3], backend=backend, seed=1, precision="float16" if why == "float16" else "float32")
    with caplog.at_level(logging.WARNING, logger="xpnet"):
        if why == "on_step":
            xpnet.lr_find(model, X, Y3, steps=12, batch_size=32)
        else:
            opt = xpnet.LBFGS() if why == "lbfgs" else xpnet.Adam()
            xpnet.fit(model, X, Y3, optimizer=opt, epochs=1, batch_size=64 if why != "lbfgs" else 500)
    lines = [r.getMessage() for r in caplog.records if r.name == "xpnet"]
    expected = {"lbfgs": "re-evaluates the loss", "float16": "float16 loss scaling", "on_step": "on_step"}[why]
    assert len(lines) == 1 and "CUDA graphs off for this run" in lines[0] and expected in lines[0], lines
    assert emu.captures == emu.replays == 0


def test_no_recording_where_the_backend_has_no_graphs(monkeypatch, caplog) -> None:
    backend = backends.get("numpy")
    assert not backend.can_capture
    with caplog.at_level(logging.WARNING, logger="xpnet"):
        _train(backend, "float32", "rmsprop-one-batch", epochs=1)
    assert not [r for r in caplog.records if r.name == "xpnet"]
    with pytest.raises(backends.CaptureFailed, match="has no CUDA graphs"):
        backend.capture(lambda: None)


def test_the_switch_turns_capture_off(monkeypatch) -> None:
    monkeypatch.delenv("XPNET_CUDA_GRAPHS", raising=False)
    monkeypatch.delenv("XPNET_FAST_PATHS", raising=False)
    assert backends.graphs_enabled()
    monkeypatch.setenv("XPNET_CUDA_GRAPHS", "0")
    assert not backends.graphs_enabled()
    monkeypatch.setenv("XPNET_CUDA_GRAPHS", "1")
    monkeypatch.setenv("XPNET_FAST_PATHS", "off")
    assert not backends.graphs_enabled()


def test_key_words_give_the_masks_of_host_keys(backend) -> None:
    xp, dev = backend.xp, backend.device
    table = xpnet.random.key_words(xp, 7, 3, [0, 5, 123456], dev)
    for row, counter in enumerate([0, 5, 123456]):
        host = xpnet.random.dropout_keep(xp, (9, 13), 0.37, 7, 3, counter, dev)
        keyed = xpnet.random.dropout_keep_keyed(xp, (9, 13), 0.37, (table[row, 0], table[row, 1]), dev)
        assert np.array_equal(to_numpy(host), to_numpy(keyed))
        part = xpnet.random.dropout_keep(xp, (3, 13), 0.37, 7, 3, counter, dev, offset=26, total=117)
        keyed = xpnet.random.dropout_keep_keyed(xp, (3, 13), 0.37, (table[row, 0], table[row, 1]), dev, 26, 117)
        assert np.array_equal(to_numpy(part), to_numpy(keyed))


# ---------------------------------------------------------------------------- real CUDA graphs
def _gpu_backends():
    return [b for b in backends.available() if b in ("cupy", "torch:cuda")]


@pytest.mark.gpu
@pytest.mark.parametrize("spec", ["cupy", "torch:cuda"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_cuda_graphs_match_eager_launches(spec, case, monkeypatch, caplog) -> None:
    if spec not in _gpu_backends():
        pytest.skip(f"{spec} is not available here")
    monkeypatch.delenv("XPNET_CUDA_GRAPHS", raising=False)
    monkeypatch.delenv("XPNET_FAST_PATHS", raising=False)
    backend = backends.get(spec)
    assert backend.can_capture
    made = []
    _remember_steps(monkeypatch, made.append)
    with caplog.at_level(logging.WARNING, logger="xpnet"):
        replayed = _train(backend, "float32", case)
    assert not [r.getMessage() for r in caplog.records if r.name == "xpnet"]
    assert len(made) == 1 and made[0]._replays  # recorded, checked and kept for every batch size
    assert all(replay is not None and checked for replay, checked, _ in made[0]._replays.values())
    monkeypatch.setenv("XPNET_CUDA_GRAPHS", "0")
    eager = _train(backend, "float32", case)
    (mg, og, hg), (me, oe, he) = replayed, eager
    assert (og.t, og.lr, mg.counters) == (oe.t, oe.lr, me.counters)
    np.testing.assert_allclose(hg["step_loss"], he["step_loss"], rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(to_numpy(mg.params), to_numpy(me.params), rtol=2e-3, atol=2e-5)

