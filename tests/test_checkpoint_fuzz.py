"""Hostile checkpoint files: every mutation of a valid checkpoint loads to the state it holds or is one
``CheckpointError`` line, within bounded memory and time.

A property test (hypothesis, 150 derandomized examples over three base files: an MLP with Adam and
early stopping, a BatchNorm/Residual network interrupted mid-epoch, the format-1 file) mutates
metadata values and types, array shapes, dtypes and headers, members (missing, extra, twice),
bytes (truncation, flips) and adds decompression bombs. Each file goes to one worker process that
loads it, restores it (a new model, the base architecture, the optimizer) and prepares a resume;
the worker runs under ``XPNET_MEMORY_LIMIT=512M`` and an address-space limit, and reports its peak
RSS (``VmHWM``) and the time each file took.
"""
from __future__ import annotations

import functools
import io
import json
import os
import select
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnet
import xpnet.checkpoint as ckpt

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the worker reads /proc/self/status")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = 150
PEAK_RSS_MB = 100  # above the worker's RSS after loading each base file once (below the bombs' 200 MiB)
SECONDS = 10.0  # per file, on a loaded 2-core machine (a valid load takes milliseconds)

_WORKER = textwrap.dedent("""
    import json, os, resource, sys, time, traceback
    import numpy as np
    import xpnet, xpnet.checkpoint as ckpt
    from xpnet.train.checkpointing import check_resume_epochs, resume_state

    def status_kb(field):  # VmHWM: this process's own peak RSS (ru_maxrss would include the parent's at fork)
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith(field + ":"))

    def equal_state(path, base):
        ck = ckpt.load(path)
        model, opt = ck.restore()
        ref = ckpt.load(base)
        ref_model, ref_opt = ref.restore()
        same = np.array_equal(np.asarray(model.params), np.asarray(ref_model.params))
        same &= np.array_equal(np.asarray(model.buffers), np.asarray(ref_model.buffers))
        if opt is not None and ref_opt is not None and opt.t:
            same &= all(np.array_equal(np.asarray(opt.state[k]), np.asarray(ref_opt.state[k])) for k in opt.state)
        if not same:
            return "restored arrays differ from the file's"
        ck.restore(ref_model)  # into a model of the base architecture: loads or refuses
        ck.new_optimizer()
        check_resume_epochs(ck, ck.epoch + 1)
        resume_state(ck, model, ck.fit_config, ck.epoch + 1)
        return "ok"

    resource.setrlimit(resource.RLIMIT_AS, (status_kb("VmSize") * 1024 + (3 << 30),) * 2)
    for line in sys.stdin:
        path, base = line.rstrip("\\n").split("\\t")
        try:  # restart VmHWM from the current RSS (else it keeps the peak of every earlier file)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        t0 = time.perf_counter()
        try:
            outcome = equal_state(path, base)
        except ckpt.CheckpointError as exc:
            outcome = "CheckpointError" if "\\n" not in str(exc) else "multi-line: " + str(exc)
        except BaseException as exc:
            outcome = "other: " + "".join(traceback.format_exception_only(exc)).strip()[-300:]
        rss = status_kb("VmHWM") // 1024
        print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - t0, "rss_mb": rss}), flush=True)
""")


class Worker:
    """The loading process: one file per request, a verdict line back (or a timeout)."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), XPNET_MEMORY_LIMIT="512M", OMP_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)

    def load(self, path: Path, base: Path) -> dict:
        self.proc.stdin.write(f"{path}\t{base}\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], 60 if self.proc.poll() is None else 0)
        assert ready, f"loading {path} did not end within 60 s"
        line = self.proc.stdout.readline()
        assert line, f"the worker died on {path} (status {self.proc.poll()})"
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# ------------------------------------------------------------------------------------------ base files
def _data(n=60):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)


def _bases(d: Path) -> dict[str, Path]:
    X, y = _data()
    mlp = xpnet.MLP([4, 16, 3], dropout=0.2, seed=3)
    xpnet.fit(mlp, X, y, optimizer=xpnet.Adam(lr=0.01), epochs=3, batch_size=16, validation_split=0.2,
              early_stopping=True, patience=5, checkpoint=d / "mlp.npz", checkpoint_extra={"note": [1, 2]})
    from xpnet.nn import BatchNorm1d, Dense, Dropout, Residual

    net = xpnet.Network([Dense(4, 8, "relu"), BatchNorm1d(), Dropout(0.1), Residual([Dense(8, "relu"), Dense(8)]),
                         Dense(3)], seed=1)
    opt = xpnet.SGD(lr=0.05, momentum=0.9)
    hist = xpnet.fit(net, X, y, optimizer=opt, epochs=1, batch_size=20)
    fit_config = {"batch_size": 20, "n_train": 60, "epochs": 3, "seed": 1}
    ckpt.save(d / "net.npz", net, opt, hist, epoch=1, fit_config=fit_config,
              loop_state={"step_in_epoch": 2, "partial": {"step_loss": [0.9, 0.8], "hits": 21, "time": 0.01}})
    return {"mlp": d / "mlp.npz", "net": d / "net.npz", "v1": ROOT / "tests" / "data" / "checkpoint_v1.npz"}


def _members(path: Path) -> tuple[dict, dict[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        raw = {i.filename: zf.read(i) for i in zf.infolist()}
    meta = json.loads(np.load(io.BytesIO(raw["__meta__.npy"])).tobytes())
    return meta, raw


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def _header(dtype: np.dtype, shape: tuple) -> bytes:
    """A .npy header declaring ``shape`` (the data is whatever follows)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                              "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _zip(members: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, method in members:
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data, compress_type=method)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ mutations
VALUES = [None, True, False, -1, 0, 1, 3, 2**31, 2**62, 2**64, 10**30, -10**30, 1.5, -0.0, float("nan"),
          float("inf"), "5", "", "relu", "x" * 5000, [], [1, 2], [[1], 2], {}, {"a": 1}, {"type": "Dense"}]


def _paths(obj, prefix=()):
    """Every path into a JSON value (the value itself included)."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(meta, path, value, delete=False):
    target = meta
    for k in path[:-1]:
        target = target[k]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value


@st.composite
def mutations(draw):
    """(base name, a function from (meta, members) to the bytes of the new file)."""
    base = draw(st.sampled_from(["mlp", "net", "v1"]))
    kind = draw(st.sampled_from(["value", "value", "value", "delete", "array", "array", "members", "bytes",
                                 "deep", "bomb"]))
    pick = draw(st.integers(0, 10**6))
    value = draw(st.sampled_from(VALUES))
    op = draw(st.integers(0, 7))
    frac = draw(st.floats(0.0, 1.0))

    def mutate(meta, raw):
        names = sorted(raw)
        members = [(n, raw[n], zipfile.ZIP_STORED) for n in names]
        if kind in ("value", "delete", "deep"):
            paths = [p for p in _paths(meta) if p]
            path = paths[pick % len(paths)]
            try:
                _set(meta, path, "@@deep@@" if kind == "deep" else value, delete=kind == "delete")
            except (TypeError, IndexError):
                pass
            depth = 60 + op * 150  # 60 ... 1110 levels: JSON's own parser gives up near 1000
            deep = ("[" * depth + "1" + "]" * depth) if op % 2 else ('{"k": ' * depth + "1" + "}" * depth)
            text = json.dumps(meta).replace('"@@deep@@"', deep).encode()
            members = [(n, _npy(np.frombuffer(text, np.uint8)) if n == "__meta__.npy" else d, m)
                       for n, d, m in members]
        elif kind == "array":
            i = pick % len(members)
            name, data, _ = members[i]
            a = np.load(io.BytesIO(data))
            new = [a.astype(np.float64), a.astype(np.float32), a.astype(">f4"), a.astype(np.int32), a > 0,
                   a[:-1] if a.size else a, a.reshape(1, -1), np.array([{"evil": 1}], dtype=object)][op]
            data = _npy(new)
            if frac > 0.7 and new.dtype != object:  # a header that lies about the shape
                data = _header(new.dtype, (10**9,) if frac > 0.85 else (new.size + 1,)) + new.tobytes()
            members[i] = (name, data, zipfile.ZIP_STORED)
        elif kind == "members":
            i = pick % len(members)
            if op < 3:
                del members[i]
            elif op < 5:
                members.append(("evil.npy", _npy(np.ones(3)), zipfile.ZIP_STORED))
            elif op < 6:
                members.append(members[i])
            else:
                members[i] = ("renamed.npy",) + members[i][1:]
        elif kind == "bomb":  # a small deflated member that would inflate to hundreds of MB
            return _bomb_zip(str(BASES[base]), names[pick % len(names)])
        data = _zip(members)
        if kind == "bytes":
            cut = int(len(data) * frac)
            data = data[:cut] if op < 4 else data[:cut] + bytes([data[cut % len(data)] ^ 0xFF]) + data[cut + 1:]
        return data

    return base, kind, mutate


BOMB_SIZE = 200 << 20
BASES: dict[str, Path] = {}  # filled by the fixture


@functools.lru_cache(maxsize=None)
def _bomb_zip(base: str, target: str) -> bytes:
    """``base`` with member ``target`` replaced by a deflated .npy whose data is BOMB_SIZE zero bytes
    (about 200 KiB in the file; its header declares the whole size)."""
    meta, raw = _members(Path(base))
    dtype = np.dtype(np.uint8 if target == "__meta__.npy" else np.float32)
    header = _header(dtype, (BOMB_SIZE // dtype.itemsize,))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compresslevel=1) as zf:
        for name in sorted(raw):
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            if name != target:
                zf.writestr(info, raw[name])
                continue
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as w:
                w.write(header)
                for _ in range(BOMB_SIZE >> 23):
                    w.write(bytes(1 << 23))
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    bases = _bases(d)
    BASES.update(bases)
    worker = Worker()
    base_rss = max(worker.load(p, p)["rss_mb"] for p in bases.values())
    yield d, bases, worker, base_rss
    worker.close()


def _verdict(result: dict, base_rss: int, what: str) -> None:
    assert result["outcome"] in ("ok", "CheckpointError"), f"{what}: {result['outcome']}"
    assert result["rss_mb"] <= base_rss + PEAK_RSS_MB, f"{what}: peak RSS {result['rss_mb']} MB (base {base_rss})"
    assert result["seconds"] < SECONDS, f"{what}: {result['seconds']:.1f} s"


def test_the_base_files_load(lab):
    d, bases, worker, base_rss = lab
    for name, path in bases.items():
        assert worker.load(path, path)["outcome"] == "ok", name


def test_mutated_checkpoints_load_or_fail_in_one_line(lab):
    d, bases, worker, base_rss = lab
    counts: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutations())
    def check(mutation):
        base, kind, mutate = mutation
        meta, raw = _members(bases[base])
        path = d / "mutated.npz"
        path.write_bytes(mutate(meta, {k: v for k, v in raw.items()}))
        result = worker.load(path, bases[base])
        counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
        _verdict(result, base_rss, f"{base}/{kind}")

    check()
    assert counts.get("CheckpointError", 0) > EXAMPLES // 3 and counts.get("ok", 0) > 0, counts


@pytest.mark.parametrize("special", ["fifo", "device", "directory"])
def test_special_files_are_refused_without_blocking(lab, special):
    d, bases, worker, base_rss = lab
    path = {"device": Path("/dev/zero"), "directory": d}.get(special, d / "pipe.npz")
    if special == "fifo" and not path.exists():
        os.mkfifo(path)
    _verdict(worker.load(path, bases["mlp"]), base_rss, special)
    with pytest.raises(ckpt.CheckpointError, match="not a regular file|is a directory"):
        ckpt.load(path)


def test_a_decompression_bomb_is_refused_before_it_inflates(lab):
    d, bases, worker, base_rss = lab
    for target in ("params.npy", "__meta__.npy"):
        path = d / "bomb.npz"
        path.write_bytes(_bomb_zip(str(bases["mlp"]), target))
        assert path.stat().st_size < 2 << 20
        _verdict(worker.load(path, bases["mlp"]), base_rss, target)
        with pytest.raises(ckpt.CheckpointError, match="declares|is not a JSON text of at most"):
            ckpt.load(path)
