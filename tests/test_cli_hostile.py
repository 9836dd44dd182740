"""scripts/train.py against hostile files and failing disks (docs/bad_inputs.md, "Scripts"): CSV files
that would leak the target or overflow, crafted checkpoints, an --out that cannot be written, a disk
that fills during or after training (exit 3, what was written is kept), Ctrl-C while the libraries
import (exit 130, one line), stale temporary files in the run folder."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import xpnet
from tests.test_scripts import ENV, ROOT, SCRIPTS, SMALL, read_json, train, write_csv
from _cli.args import CLIError  # noqa: E402 - scripts/ is on sys.path once tests.test_scripts is imported
from _cli.runmodel import load_run_model  # noqa: E402

LINUX = sys.platform.startswith("linux")


def _run(capsys, *argv) -> tuple[int, str]:
    rc = train.main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def _one_line_error(err: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def _no_temporaries(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------ CSV files
def _csv(tmp_path: Path, header: list[str], column) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    rows = np.column_stack([X, (X[:, 0] > 0).astype(int)]).tolist()
    for r, v in zip(rows, column(X)):
        r.append(v)
    return write_csv(tmp_path / "data.csv", header, rows)


CSV_CASES = [
    ("duplicate-target-column", ["a", "b", "y", "y"], lambda X: (X[:, 0] > 0).astype(int),
     ["--target", "y"], "has duplicate column names ['y']"),
    ("overflowing-column", ["a", "b", "y", "big"], lambda X: np.where(X[:, 1] > 0, 1e300, -1e300),
     ["--target", "y"], "column 'big' cannot be standardized"),
    ("overflowing-target", ["a", "b", "c", "price"], lambda X: np.where(X[:, 1] > 0, 1e300, -1e300) + X[:, 0],
     ["--target", "price", "--task", "regression"], "column 'price' cannot be standardized"),
    ("non-finite-value", ["a", "b", "y", "d"], lambda X: ["1e400"] + list(X[1:, 0]),
     ["--target", "y"], "line 2: non-finite value '1e400' in column 'd'"),
    ("non-finite-target", ["a", "b", "c", "t"], lambda X: ["-nan"] + list(X[1:, 0]),
     ["--target", "t"], "line 2: non-finite value '-nan' in target column 't'"),
]


@pytest.mark.parametrize("header,column,flags,fragment", [pytest.param(*c[1:], id=c[0]) for c in CSV_CASES])
def test_bad_csv_is_one_line_exit_2(tmp_path, capsys, header, column, flags, fragment):
    data = _csv(tmp_path, header, column)
    rc, err = _run(capsys, "--dataset", data, *flags, "--hidden", 8, "--epochs", 1, "--quiet",
                   "--out", tmp_path / "out")
    assert rc == 2 and fragment in err, err
    _one_line_error(err)
    assert not (tmp_path / "out").exists()


def test_a_saved_model_with_null_statistics_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(capsys, *SMALL, "--epochs", 1, "--out", out)[0] == 0
    meta = read_json(out / "model.json")
    assert all(np.isfinite(meta["standardize"]["mean"] + meta["standardize"]["std"]))
    meta["standardize"]["std"][1] = None
    (out / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CLIError, match=r"model.json: standardize: column 1 cannot be standardized"):
        load_run_model(out)


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def run3(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "run"
    assert train.main([*SMALL, "--epochs", "3", "--out", str(out)]) == 0
    return out


def _crafted(run: Path, dst: Path, change) -> Path:
    with zipfile.ZipFile(run / "checkpoint.npz") as zf:
        raw = {i.filename: zf.read(i) for i in zf.infolist()}
    meta = json.loads(np.load(io.BytesIO(raw["__meta__.npy"])).tobytes())
    change(meta)
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    raw["__meta__.npy"] = buf.getvalue()
    dst.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dst / "checkpoint.npz", "w") as zf:
        for name, data in raw.items():
            zf.writestr(name, data)
    return dst / "checkpoint.npz"


RESUME_CASES = [
    ("settings-type", lambda m: m["extra"]["settings"].update(batch_size="16"), "--batch-size is '16'"),
    ("settings-choice", lambda m: m["extra"]["settings"].update(optimizer="adamax"), "--optimizer is 'adamax'"),
    ("settings-dataset", lambda m: m["extra"]["settings"].update(dataset=5), "--dataset is 5"),
    ("settings-switch", lambda m: m["extra"]["settings"].update(early_stopping="yes"), "--early-stopping is 'yes'"),
    ("settings-cross-flag", lambda m: m["extra"]["settings"].update(weight_decay=0.1), "--weight-decay applies to"),
    ("null-statistics", lambda m: m["extra"]["standardize"].update(mean=[None, 1.0]),
     "extra.standardize: column 0 cannot be standardized"),
    ("epoch-string", lambda m: m.update(epoch="3"), "field 'epoch' must be an integer"),
    ("huge-layer", lambda m: m["model"].update(sizes=[2, 10**12, 8, 1]), "field 'layout' does not match"),
    ("model-missing", lambda m: m.pop("model"), "field 'model' must be a JSON object"),
]


@pytest.mark.parametrize("change,fragment", [pytest.param(c, f, id=i) for i, c, f in RESUME_CASES])
def test_crafted_checkpoint_is_one_line_exit_2(run3, tmp_path, capsys, change, fragment):
    path = _crafted(run3, tmp_path / "crafted", change)
    (tmp_path / "crafted" / "split.npz").write_bytes((run3 / "split.npz").read_bytes())
    rc, err = _run(capsys, "--resume", path, "--epochs", 4, "--quiet", "--out", tmp_path / "out")
    assert rc == 2 and fragment in err, err
    _one_line_error(err)
    assert not (tmp_path / "out").exists()


def test_a_resumed_run_that_is_complete_restores_its_best_epoch(tmp_path, capsys):
    out = tmp_path / "es"
    assert _run(capsys, *SMALL, "--epochs", 4, "--early-stopping", "--patience", 3, "--out", out)[0] == 0
    done = tmp_path / "done"
    rc, err = _run(capsys, "--resume", out, "--quiet", "--out", done)
    assert rc == 0 and "already complete" in err
    a, b = (np.load(d / "model.npz") for d in (out, done))
    assert all(np.array_equal(a[k], b[k]) for k in a.files)  # the run's end state: its best epoch's parameters


# ------------------------------------------------------------------------------------------ files
@pytest.mark.parametrize("where", ["out-under-a-file", "checkpoint-is-a-directory"])
def test_outputs_that_cannot_be_written_fail_before_training(tmp_path, capsys, where):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "run" if where == "out-under-a-file" else tmp_path / "run"
    if where == "checkpoint-is-a-directory":
        (out / "checkpoint.npz").mkdir(parents=True)
    t0 = time.perf_counter()
    rc, err = _run(capsys, *SMALL, "--epochs", 100000, "--out", out)  # would train for minutes
    assert rc == 2 and time.perf_counter() - t0 < 60
    assert ("cannot create output directory" if where == "out-under-a-file" else "checkpoint.npz' is a directory") \
        in err, err
    _one_line_error(err)


def _disk_full(monkeypatch, *names: str) -> None:
    """fsync of a temporary file for one of ``names`` fails with ENOSPC (as a full disk reports it)."""
    real = os.fsync

    def fsync(fd: int) -> None:
        target = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if any(target.startswith(f".{n}.xpnet-") for n in names):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.skipif(not LINUX, reason="reads /proc/self/fd")
def test_disk_full_during_training_keeps_what_was_written_and_exits_3(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _disk_full(monkeypatch, "checkpoint-0001.npz")
    rc, err = _run(capsys, *SMALL, "--epochs", 3, "--checkpoint-every", 1, "--out", out)
    assert rc == 3, err
    assert err.startswith("error: could not save checkpoint-0001.npz (No space left on device) after 1 of 3 epochs")
    assert err.count("\n") == 1 and "not saved: checkpoint-0001.npz" in err and "Traceback" not in err
    assert read_json(out / "history.json")["epochs_run"] == 1
    assert load_run_model(out).model.sizes == [2, 16, 8, 1]  # the model at that point was saved
    _no_temporaries(out)


@pytest.mark.skipif(not LINUX, reason="reads /proc/self/fd")
def test_disk_full_after_training_exits_3(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _disk_full(monkeypatch, "model.npz")
    rc, err = _run(capsys, *SMALL, "--epochs", 2, "--out", out)
    assert rc == 3 and err == ("error: could not save model.npz (No space left on device); the files written "
                               "before it are kept\n"), err
    assert xpnet.checkpoint.load(out / "checkpoint.npz").epoch == 2 and (out / "history.json").is_file()
    _no_temporaries(out)


@pytest.mark.skipif(not LINUX, reason="needs RLIMIT_FSIZE")
def test_a_real_write_error_in_a_subprocess_exits_3(tmp_path):
    """The kernel refuses every file above 150 KB (RLIMIT_FSIZE, SIGXFSZ ignored): the checkpoint and model of
    a 67k-parameter network cannot be written, the small files can."""
    import resource

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "train.py"), "--samples", "200", "--hidden", "256,256",
                           "--epochs", "2", "--quiet", "--out", str(out)], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=180, preexec_fn=limit)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("error: could not save checkpoint.npz (File too large) after 2 of 2 epochs")
    assert proc.stderr.count("\n") == 1 and "not saved: checkpoint.npz, model.npz" in proc.stderr
    assert (out / "history.json").is_file() and (out / "config.json").is_file()
    _no_temporaries(out)


def test_stale_temporaries_in_the_run_folder_are_removed(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [out / f".model.npz.xpnet-{dead.stdout.strip()}-x.tmp", out / f".x.png.xpnet-{dead.stdout.strip()}-y.tmp"]
    for p in stale:
        p.write_bytes(b"left by a killed run")
    assert _run(capsys, *SMALL, "--epochs", 1, "--out", out)[0] == 0
    _no_temporaries(out)


@pytest.mark.skipif(not LINUX, reason="reads /proc/PID/maps")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_libraries_import_is_one_line(tmp_path, sig):
    """The signal is sent as soon as NumPy's extension is mapped into the process (the script installs its
    start-up handler before importing anything heavy), while the libraries are still importing."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "train.py"), *SMALL, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if "_multiarray_umath" in Path(f"/proc/{proc.pid}/maps").read_text():
                break
        except OSError:
            pass
        time.sleep(0.002)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
    assert proc.returncode == 128 + sig and stderr == f"interrupted ({name}): stopped\n", stderr
    assert stdout == "" and not out.exists()
