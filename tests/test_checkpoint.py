"""Checkpoints: format, exact resume (same and other backends), interruption, atomic writes, load errors."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import backends
import xpnet
import xpnet.checkpoint as ckpt
from tests.helpers import all_backends, assert_equal, to_numpy

ROOT = Path(__file__).resolve().parents[1]
RTOL = {"float32": 1e-4, "float64": 1e-9}
SPECS = [b.spec for b in all_backends()]


def _data(n=70, features=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.8)
    return X, y


def _model(backend="numpy", dtype="float32", dropout=0.2, seed=3):
    return xpnet.MLP([4, 16, 3], dropout=dropout, seed=seed, backend=backend, dtype=dtype)


def _same_history(a, b, exact=True, rtol=0.0):
    """History a == b except wall-clock times (exact, or floats within rtol)."""
    assert set(a) == set(b)
    for k in a:
        if k == "time":
            assert len(a[k]) == len(b[k])
        elif exact or not isinstance(a[k], list):
            assert a[k] == b[k], k
        else:
            x = np.array([np.nan if v is None else v for v in a[k]], dtype=float)
            z = np.array([np.nan if v is None else v for v in b[k]], dtype=float)
            np.testing.assert_allclose(x, z, rtol=rtol, equal_nan=True, err_msg=k)


# (optimizer factory, fit keyword arguments): the state each one keeps must survive a resume.
CONFIGS = {
    "adam-dropout-valsplit": (lambda: xpnet.Adam(lr=0.01), dict(batch_size=16, validation_split=0.2, l2=1e-3)),
    "nesterov-cosine-clip": (lambda: xpnet.SGD(lr=0.05, momentum=0.9, nesterov=True),
                             dict(batch_size=13, schedule=xpnet.Cosine(0.05, total=40), clip_norm=1.0,
                                  record_grad_norms=True, diagnostics=True)),
    "rmsprop-early-stopping": (lambda: xpnet.RMSProp(lr=0.01), dict(batch_size=32, validation_split=0.3,
                                                                    early_stopping=True, patience=2)),
    "adamw-valdata-noshuffle": (lambda: xpnet.AdamW(lr=0.01), dict(batch_size=70, shuffle=False,
                                                                   validation_data=_data(20, seed=1))),
}


# ------------------------------------------------------------------------------------------ format
def test_file_is_a_plain_npz(tmp_path):
    X, y = _data()
    model, opt = _model(), xpnet.Adam(lr=0.01)
    hist = xpnet.fit(model, X, y, optimizer=opt, epochs=2, batch_size=16)
    path = ckpt.save(tmp_path / "a.npz", model, opt, hist, epoch=2, extra={"scaler": {"mean": [0.5], "std": [2.0]}})
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["__meta__", "optimizer.m", "optimizer.v", "params"]
        assert_equal(z["params"], to_numpy(model.params))
        assert_equal(z["optimizer.m"], to_numpy(opt.state["m"]))
        meta = json.loads(z["__meta__"].tobytes().decode())
    for entry in meta["layout"]:  # the layout says where each parameter lives in "params"
        start, shape = entry["offset"], tuple(entry["shape"])
        got = to_numpy(model.params)[start:start + int(np.prod(shape))].reshape(shape)
        assert_equal(got, to_numpy(model.layout[entry["name"]].view(model.params, model.xp)))
    assert [e["name"] for e in meta["layout"]] == ["0.W", "2.W", "0.b", "2.b"]
    assert meta["streams"] == {"0": xpnet.random.STREAMS["init"], "1": xpnet.random.STREAMS["dropout"],
                               "2": xpnet.random.STREAMS["init"] + 1}
    assert meta["format"] == "xpnet.checkpoint" and meta["format_version"] == ckpt.FORMAT_VERSION
    assert meta["xpnet_version"] == xpnet.__version__
    assert meta["model"] == model.config() and meta["epoch"] == 2 and meta["step"] == opt.t == 10
    assert meta["optimizer"]["config"]["name"] == "Adam" and meta["optimizer"]["t"] == 10
    assert meta["dropout_counters"] == [10]
    assert meta["extra"] == {"scaler": {"mean": [0.5], "std": [2.0]}}
    assert meta["history"]["loss"] == hist["loss"]


def test_roundtrip_onto_every_backend(backend, dtype, tmp_path):
    X, y = _data()
    model, opt = _model(backend, dtype), xpnet.Adam(lr=0.01)
    hist = xpnet.fit(model, X, y, optimizer=opt, epochs=2, batch_size=16)
    ck = ckpt.load(ckpt.save(tmp_path / "a.npz", model, opt, hist, epoch=2))
    assert (ck.epoch, ck.step, ck.history, ck.model_config) == (2, opt.t, hist, model.config())
    for target in {"numpy", backend.spec}:
        m2, o2 = ck.restore(backend=target)
        assert m2.backend.spec == target and m2.config() == model.config()
        assert_equal(m2.params, to_numpy(model.params), backend=target)
        assert [d.counter for d in m2.dropout_layers] == [d.counter for d in model.dropout_layers] == [10]
        assert type(o2) is xpnet.Adam and o2.t == opt.t and o2.lr == opt.lr and sorted(o2.state) == ["m", "v"]
        for k in ("m", "v"):
            assert_equal(o2.state[k], to_numpy(opt.state[k]), backend=target)
        # and into an existing model (other seed: the checkpoint's RNG key wins)
        m3 = _model(target, dtype, seed=99)
        ck.restore(m3)
        assert m3.seed == 3 and m3.dropout_layers[0].ctx.seed == 3
        assert_equal(m3.params, to_numpy(model.params), backend=target)


def test_restore_into_other_dtype(tmp_path):
    model = _model(dtype="float64")
    ck = ckpt.load(ckpt.save(tmp_path / "a.npz", model))
    m32, opt = ck.restore(dtype="float32")
    assert opt is None and m32.dtype_name == "float32"
    np.testing.assert_array_equal(to_numpy(m32.params), to_numpy(model.params).astype(np.float32))


# ------------------------------------------------------------------------------------------ exact resume
@pytest.mark.filterwarnings("ignore:epoch [0-9]+")  # diagnostics' advice, not the subject here
@pytest.mark.parametrize("name", list(CONFIGS))
def test_resume_is_bit_identical_on_numpy(name, tmp_path):
    make_opt, kw = CONFIGS[name]
    X, y = _data()
    full = _model()
    h_full = xpnet.fit(full, X, y, optimizer=make_opt(), epochs=8, **kw)
    first = _model()
    xpnet.fit(first, X, y, optimizer=make_opt(), epochs=4, checkpoint=tmp_path / "half.npz", **kw)
    resumed = _model(seed=3)
    h_res = xpnet.fit(resumed, X, y, epochs=8, resume=tmp_path / "half.npz", **kw)  # optimizer from the file
    assert_equal(resumed.params, full.params)
    _same_history(h_res, h_full)
    assert [d.counter for d in resumed.dropout_layers] == [d.counter for d in full.dropout_layers]


def test_resume_twice_and_past_the_end(tmp_path):
    X, y = _data()
    full = _model()
    h_full = xpnet.fit(full, X, y, epochs=6, batch_size=16)
    m = _model()
    xpnet.fit(m, X, y, epochs=2, batch_size=16, checkpoint=tmp_path / "c.npz")
    xpnet.fit(_model(), X, y, epochs=4, batch_size=16, resume=tmp_path / "c.npz", checkpoint=tmp_path / "c.npz")
    m = _model()
    h = xpnet.fit(m, X, y, epochs=6, batch_size=16, resume=ckpt.load(tmp_path / "c.npz"))
    assert_equal(m.params, full.params)
    _same_history(h, h_full)
    # a total at or below the epochs completed would train nothing: an error that says so, the model untouched
    done = ckpt.save(tmp_path / "d.npz", m, None, h, epoch=6)
    for total in (6, 4):
        m2 = _model(seed=11)
        before = to_numpy(m2.params).copy()
        with pytest.raises(ValueError) as info:
            xpnet.fit(m2, X, y, epochs=total, batch_size=16, resume=done)
        assert f"epochs={total} but {done} has completed 6 epochs" in str(info.value)
        assert_equal(m2.params, before)
    assert_equal(ckpt.load(done).restore()[0].params, full.params)  # the saved state itself


PAIRS = [("numpy", "strict:device1"), ("strict:device1", "numpy"), ("numpy", "torch:cpu"), ("torch:cpu", "numpy")]


@pytest.mark.parametrize("src,dst", PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_resume_on_another_backend(src, dst, dtype, tmp_path):
    if src not in SPECS or dst not in SPECS:
        pytest.skip(f"needs backends {src} and {dst}")
    make_opt, kw = CONFIGS["adam-dropout-valsplit"]
    X, y = _data()
    full = _model(src, dtype)
    h_full = xpnet.fit(full, X, y, optimizer=make_opt(), epochs=6, **kw)
    xpnet.fit(_model(src, dtype), X, y, optimizer=make_opt(), epochs=3, checkpoint=tmp_path / "c.npz", **kw)
    model, opt = ckpt.load(tmp_path / "c.npz").restore(backend=dst)
    h = xpnet.fit(model, X, y, optimizer=opt, epochs=6, resume=tmp_path / "c.npz", **kw)
    assert model.backend.spec == dst
    np.testing.assert_allclose(to_numpy(model.params), to_numpy(full.params), rtol=RTOL[dtype],
                               atol=RTOL[dtype] * 0.1)
    _same_history(h, h_full, exact=False, rtol=RTOL[dtype])


# ------------------------------------------------------------------------------------------ fit's checkpoint options
def test_checkpoint_every_and_keep_last(tmp_path):
    X, y = _data()
    other = tmp_path / "unrelated-7.npz"
    other.write_bytes(b"keep me")
    model = _model()
    xpnet.fit(model, X, y, epochs=7, batch_size=16, checkpoint=tmp_path / "run-{epoch:03d}.npz",
              checkpoint_every=2, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-006.npz", "run-007.npz", "unrelated-7.npz"]
    last = ckpt.load(tmp_path / "run-007.npz")  # the end of training is always saved
    assert last.epoch == 7 and ckpt.load(tmp_path / "run-006.npz").epoch == 6
    assert_equal(last.restore()[0].params, model.params)
    assert last.fit_config["batch_size"] == 16 and last.fit_config["epochs"] == 7

    xpnet.fit(_model(), X, y, epochs=5, batch_size=16, checkpoint=tmp_path / "all-{epoch}.npz", checkpoint_every=2)
    assert sorted(p.name for p in tmp_path.glob("all-*")) == ["all-2.npz", "all-4.npz", "all-5.npz"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_checkpoint_options_are_checked(tmp_path):
    X, y = _data()
    with pytest.raises(ValueError, match="need checkpoint=path"):
        xpnet.fit(_model(), X, y, epochs=1, keep_last=2)
    with pytest.raises(ValueError, match="checkpoint_every must be a positive integer"):
        xpnet.fit(_model(), X, y, epochs=1, checkpoint=tmp_path / "a.npz", checkpoint_every=0)
    with pytest.raises(ValueError, match="checkpoint_extra must be JSON-serializable"):
        xpnet.fit(_model(), X, y, epochs=1, checkpoint=tmp_path / "a.npz", checkpoint_extra={"f": print})
    with pytest.raises(ValueError, match="resume must be a checkpoint path"):
        xpnet.fit(_model(), X, y, epochs=1, resume=3)
    with pytest.raises(ValueError, match=r"may hold only \{epoch\} as a field"):
        xpnet.fit(_model(), X, y, epochs=1, checkpoint=str(tmp_path / "{run}-{epoch}.npz"))


def test_extra_is_stored_and_must_be_json(tmp_path):
    X, y = _data()
    scaler = {"mean": np.float64(0.25), "std": np.array([1.0, 2.0])}  # NumPy values become lists/floats
    xpnet.fit(_model(), X, y, epochs=1, checkpoint=tmp_path / "a.npz", checkpoint_extra={"scaler": scaler})
    assert ckpt.load(tmp_path / "a.npz").extra == {"scaler": {"mean": 0.25, "std": [1.0, 2.0]}}
    xpnet.fit(_model(), X, y, epochs=2, resume=tmp_path / "a.npz", checkpoint=tmp_path / "b.npz")
    assert ckpt.load(tmp_path / "b.npz").extra == {"scaler": {"mean": 0.25, "std": [1.0, 2.0]}}  # carried over
    with pytest.raises(ckpt.CheckpointError, match="JSON-serializable"):
        ckpt.save(tmp_path / "bad.npz", _model(), extra={"bad": object()})
    assert not (tmp_path / "bad.npz").exists()


def test_resume_with_other_settings_warns(tmp_path):
    X, y = _data()
    xpnet.fit(_model(), X, y, epochs=2, batch_size=16, checkpoint=tmp_path / "a.npz", seed=7)
    with pytest.warns(UserWarning, match=r"batch_size 16 -> 8") as record:
        xpnet.fit(_model(), X, y, epochs=3, batch_size=8, resume=tmp_path / "a.npz")
    assert "seed" not in str(record[0].message)  # the saved fit seed is the default on resume


def test_zero_learning_rate_position_is_restored(tmp_path):
    X, y = _data()
    opt = xpnet.SGD(lr=0.1, momentum=0.5)
    xpnet.fit(_model(), X, y, optimizer=opt, epochs=2, batch_size=35, schedule=xpnet.Cosine(0.1, total=3),
              checkpoint=tmp_path / "a.npz")
    o2 = ckpt.load(tmp_path / "a.npz").new_optimizer()
    assert type(o2) is xpnet.SGD and o2.lr == opt.lr == 0.0 and o2.momentum == 0.5 and o2.t == 0


# ------------------------------------------------------------------------------------------ interruption
class _Kill:
    """Callback: send ``sig`` to this process at the end of epoch ``at`` (numbered from 1)."""

    def __init__(self, sig, at):
        self.sig, self.at = sig, at

    def __call__(self, epoch, logs):
        if epoch == self.at:
            os.kill(os.getpid(), self.sig)


class SignalAdam(xpnet.Adam):
    """Adam that sends SIGTERM to this process after step ``at`` (mid-epoch interruption)."""

    def __init__(self, lr=0.01, at=None):
        super().__init__(lr=lr)
        self.at = at

    def step(self, params, grads):
        super().step(params, grads)
        if self.t == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_at_epoch_end_saves_and_raises(sig, tmp_path):
    X, y = _data()
    full = _model()
    h_full = xpnet.fit(full, X, y, epochs=6, batch_size=16)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(ckpt.Interrupted) as info:
        xpnet.fit(_model(), X, y, epochs=6, batch_size=16, checkpoint=tmp_path / "c.npz", checkpoint_every=5,
                  callbacks=[_Kill(sig, at=3)])
    err = info.value
    assert isinstance(err, KeyboardInterrupt) and not isinstance(err, Exception)
    assert {s: signal.getsignal(s) for s in before} == before  # handlers put back
    assert (err.epoch, err.step_in_epoch, err.signum, err.path) == (3, 0, sig, str(tmp_path / "c.npz"))
    assert len(err.history["loss"]) == 3
    assert signal.Signals(sig).name in str(err) and "resume=" in str(err) and "\n" not in str(err)
    m = _model()
    h = xpnet.fit(m, X, y, epochs=6, batch_size=16, resume=err.path)
    assert_equal(m.params, full.params)
    _same_history(h, h_full)


def test_signal_mid_epoch_resumes_exactly(tmp_path):
    X, y = _data()
    kw = dict(batch_size=16, validation_split=0.2)  # 56 samples: 4 steps per epoch
    full = _model()
    h_full = xpnet.fit(full, X, y, optimizer=SignalAdam(), epochs=5, **kw)
    with pytest.raises(ckpt.Interrupted) as info:
        xpnet.fit(_model(), X, y, optimizer=SignalAdam(at=10), epochs=5, checkpoint=tmp_path / "c.npz", **kw)
    assert (info.value.epoch, info.value.step_in_epoch) == (2, 2)
    ck = ckpt.load(tmp_path / "c.npz")
    assert ck.step == 10 and ck.meta["step_in_epoch"] == 2 and len(ck.meta["partial"]["step_loss"]) == 2
    with pytest.raises(ckpt.CheckpointError, match="middle of an epoch"):
        xpnet.fit(_model(), X, y, optimizer=SignalAdam(), epochs=5, resume=ck, batch_size=8, validation_split=0.2)
    m = _model()
    h = xpnet.fit(m, X, y, optimizer=SignalAdam(), epochs=5, resume=ck, **kw)
    assert_equal(m.params, full.params)
    _same_history(h, h_full)


def test_no_handlers_without_a_checkpoint():
    seen = []

    class Probe:
        def on_train_begin(self, info):
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    X, y = _data()
    xpnet.fit(_model(), X, y, epochs=1, callbacks=[Probe()])
    assert seen == [before]


def test_fit_in_a_worker_thread_leaves_signals_alone(tmp_path):
    import threading

    X, y = _data()
    before = signal.getsignal(signal.SIGINT)
    seen, done = [], []

    def work():
        seen.append(signal.getsignal(signal.SIGINT))
        done.append(xpnet.fit(_model(), X, y, epochs=2, checkpoint=tmp_path / "t.npz",
                              callbacks=[lambda e, logs: seen.append(signal.getsignal(signal.SIGINT))]))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [before] * 3 and len(done[0]["loss"]) == 2 and ckpt.load(tmp_path / "t.npz").epoch == 2


# ------------------------------------------------------------------------------------------ atomic writes
def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    old = _model(seed=1)
    ckpt.save(path, old, epoch=1)
    original = path.read_bytes()

    def torn(f, arrays):  # crash in the middle of writing the new file
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "write_npz", torn)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save(path, _model(seed=2), epoch=2)
    monkeypatch.undo()

    def no_rename(src, dst):
        raise KeyboardInterrupt  # interrupted just before the rename

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(path, _model(seed=2), epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == original and sorted(os.listdir(tmp_path)) == ["c.npz"]
    assert ckpt.load(path).epoch == 1


_KILL_SCRIPT = textwrap.dedent("""
    import hashlib, os, sys
    import numpy as np
    import xpnet
    ck, log = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 8))
    y = (X[:, 0] > 0).astype(np.int64)
    model = xpnet.MLP([8, 192, 192, 1], dropout=0.1, seed=0)
    out = open(log, "a")

    def record(epoch, logs):  # before fit writes this epoch's checkpoint
        digest = hashlib.sha256(np.ascontiguousarray(model.params).tobytes()).hexdigest()
        out.write(f"{epoch} {digest}\\n")
        out.flush()

    xpnet.fit(model, X, y, epochs=100000, batch_size=32, checkpoint=ck, callbacks=[record],
              resume=ck if os.path.exists(ck) else None)
""")


def test_sigkill_never_leaves_a_torn_checkpoint(tmp_path):
    """Kill a training process (which resumes from the file each time) 20 times at random moments:
    the file on disk always loads and is exactly a state the process wrote."""
    script, ck, log = tmp_path / "train.py", tmp_path / "c.npz", tmp_path / "log.txt"
    script.write_text(_KILL_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    delays = random.Random(20240607)
    found = 0
    for _ in range(20):
        lines_before = len(log.read_text().splitlines()) if log.exists() else 0
        proc = subprocess.Popen([sys.executable, str(script), str(ck), str(log)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while (not log.exists() or len(log.read_text().splitlines()) == lines_before) and proc.poll() is None:
            assert time.monotonic() < deadline, "the training process did not start"
            time.sleep(0.002)
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(delays.uniform(0.0, 0.08))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        logged: dict[int, set[str]] = {}
        for line in log.read_text().splitlines():
            epoch, digest = line.split()
            logged.setdefault(int(epoch), set()).add(digest)
        assert all(len(d) == 1 for d in logged.values()), "a resumed run diverged from the first one"
        if ck.exists():
            found += 1
            state = ckpt.load(ck)
            model, _ = state.restore()
            digest = hashlib.sha256(to_numpy(model.params).tobytes()).hexdigest()
            assert logged.get(state.epoch) == {digest}
            assert len(state.history["loss"]) == state.epoch
    assert found >= 15 and max(logged) > 20
    cut_short = list(tmp_path.glob(".c.npz.*.tmp"))
    # The next successful save in the folder removes the temporary files of writers that no longer run
    # (one planted for the last killed process, so the check cannot pass vacuously) and keeps a live one's.
    planted = tmp_path / f".c.npz.xpnet-{proc.pid}-planted.tmp"
    planted.write_bytes(b"half a checkpoint")
    alive = tmp_path / f".c.npz.xpnet-{os.getppid()}-writing.tmp"
    alive.write_bytes(b"another process is writing this")
    ckpt.save(ck, ckpt.load(ck).restore()[0])
    assert sorted(tmp_path.glob(".*.tmp")) == [alive], "temporary files of killed writers remain"
    print(f"{found} kills found a checkpoint; {max(logged)} epochs; {len(cut_short)} writes cut short, "
          f"all removed by the next save")


# ------------------------------------------------------------------------------------------ load errors
@pytest.fixture
def good(tmp_path):
    X, y = _data()
    model, opt = _model(), xpnet.Adam()
    hist = xpnet.fit(model, X, y, optimizer=opt, epochs=1)
    return Path(ckpt.save(tmp_path / "good.npz", model, opt, hist, epoch=1))


def _error(path, match, restore_into=None):
    with pytest.raises(ckpt.CheckpointError) as info:
        ck = ckpt.load(path)
        if restore_into is not None:
            ck.restore(restore_into)
    msg = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in msg and str(path) in msg
    assert match in msg, msg
    return msg


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_file(good, keep):
    data = good.read_bytes()
    good.write_bytes(data[:int(len(data) * keep)])
    _error(good, "truncated or corrupted")


def test_flipped_byte_is_detected(good):
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("params.npy")
    data[info.header_offset + 200] ^= 0xFF  # inside the parameters' data
    good.write_bytes(bytes(data))
    _error(good, "truncated or corrupted")


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "t.npz").write_text("hello")
    _error(tmp_path / "t.npz", "not an xpnet checkpoint")
    (tmp_path / "e.npz").write_bytes(b"")
    _error(tmp_path / "e.npz", "empty")
    np.savez(tmp_path / "plain.npz", a=np.ones(3))
    _error(tmp_path / "plain.npz", "without __meta__")
    np.savez(tmp_path / "foreign.npz", __meta__=np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
    _error(tmp_path / "foreign.npz", "foreign __meta__")
    _error(tmp_path / "missing.npz", "no such file")


def _rewrite(path, change_meta=None, **arrays):
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    meta = json.loads(members["__meta__"].tobytes())
    if change_meta:
        change_meta(meta)
    members["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    members.update(arrays)
    np.savez(path, **members)


def test_newer_format_version(good):
    _rewrite(good, lambda m: m.update(format_version=ckpt.FORMAT_VERSION + 1, xpnet_version="9.0"))
    msg = _error(good, f"format {ckpt.FORMAT_VERSION + 1}")
    assert "upgrade xpnet" in msg and "9.0" in msg


def test_pickled_objects_are_refused(good, monkeypatch):
    monkeypatch.setattr("pickle.loads", lambda *a, **k: pytest.fail("unpickled"))
    _rewrite(good, **{"params": np.array([{"evil": 1}, None], dtype=object)})
    _error(good, "Python objects")


def test_missing_array(good):
    _rewrite(good, lambda m: m["arrays"].append("optimizer.w"))
    _error(good, "arrays ['optimizer.w'] are missing")


@pytest.mark.parametrize("kw,what", [(dict(sizes=[4, 8, 3]), "sizes"), (dict(activation="tanh"), "activation"),
                                     (dict(dropout=0.5), "dropout"), (dict(sizes=[4, 16, 16, 3]), "sizes"),
                                     (dict(output="sigmoid"), "output")])
def test_architecture_mismatch(good, kw, what):
    args = dict(sizes=[4, 16, 3], dropout=0.2) | kw
    msg = _error(good, "was saved from MLP([4, 16, 3]", restore_into=xpnet.MLP(args.pop("sizes"), **args))
    assert what in msg.split("(", 2)[-1]


def test_optimizer_mismatch(good):
    with pytest.raises(ckpt.CheckpointError, match="holds Adam state but the optimizer given is SGD"):
        ckpt.load(good).restore(optimizer=xpnet.SGD())
    X, y = _data()
    with pytest.raises(ckpt.CheckpointError, match="holds Adam state"):
        xpnet.fit(_model(), X, y, optimizer=xpnet.RMSProp(), resume=good)


def test_unwritable_arrays_are_refused(tmp_path):
    model = _model()
    opt = xpnet.Adam()
    opt.state["weird"] = backends.get("numpy").asarray(np.array(["a"]))
    with pytest.raises(ckpt.CheckpointError, match="only bool, integer and float"):
        ckpt.save(tmp_path / "w.npz", model, opt)
    assert not list(tmp_path.iterdir())
