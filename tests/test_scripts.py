"""scripts/train.py and scripts/parity.py end to end.

The main runs are subprocesses (``sys.executable scripts/...``) on numpy and strict; flag
variations and the bad-input table call the scripts' ``main(argv)`` in this process
(same code path after argument parsing, a second faster). Runs are tiny (200 samples,
2-5 epochs, batch 16 so that the 144 training rows make 9 full batches).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

import backends
import xpnet
import xpnet.checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
ENV.pop("XPNET_DEBUG", None)
SMALL = ["--samples", "200", "--hidden", "16,8", "--batch-size", "16", "--quiet"]
STEPS = 9  # 200 samples -> 160 after the test split -> 144 train rows / batch 16
PNG = b"\x89PNG\r\n\x1a\n"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"xpnet_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = _load("train")  # puts scripts/ on sys.path
parity = _load("parity")
from _cli.data import load_dataset  # noqa: E402
from _cli.runmodel import load_run_model  # noqa: E402


def run_script(name: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / f"{name}.py"), *map(str, args)], capture_output=True,
                          text=True, env=ENV, timeout=timeout, cwd=ROOT)


def read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def has(spec: str) -> bool:
    try:
        backends.get(spec)
        return True
    except backends.BackendUnavailable:
        return False


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# --------------------------------------------------------------------------- train.py end to end
@pytest.mark.parametrize("spec", ["numpy", "strict"])
def test_train_end_to_end(tmp_path, spec):
    out = tmp_path / "run"
    proc = run_script("train", "--backend", spec, "--epochs", "3", *SMALL, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    files = ["config.json", "history.csv", "history.json", "metrics.json", "model.npz", "model.json", "split.npz",
             "checkpoint.npz", "loss.png", "accuracy.png", "grad_norms.png", "decision_boundary.png"]
    for name in files:
        assert (out / name).is_file(), name
    for name in files:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == PNG, name
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # atomic writes left nothing behind
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "metrics.json").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600

    config = read_json(out / "config.json")
    assert config["backend"] == backends.get(spec).spec and config["device"] == backends.get(spec).device_name
    assert config["seed"] == 0 and config["settings"]["epochs"] == 3 and config["settings"]["lr"] == 1e-3
    assert config["model"]["sizes"] == [2, 16, 8, 1] and config["model"]["dropout"] == [0.1, 0.1]
    assert [layer["type"] for layer in config["model"]["layers"]] == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert config["optimizer"]["name"] == "Adam" and config["data"]["splits"] == {"train": 144, "val": 16, "test": 40}
    assert "numpy" in config["versions"] and "xpnet" in config["versions"]

    hist = read_json(out / "history.json")
    pe = hist["per_epoch"]
    assert pe["epoch"] == [1, 2, 3] and hist["steps_per_epoch"] == STEPS and not hist["interrupted"]
    assert len(hist["per_step"]["loss"]) == 3 * STEPS
    assert all(len(g) == 3 for g in pe["grad_norms"]) and len(pe["grad_norms"]) == 3
    # the epoch loss is the sample-weighted mean of its steps (all batches full here)
    assert pe["train_loss"][0] == pytest.approx(np.mean(hist["per_step"]["loss"][:STEPS]), rel=1e-9)
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["train_loss"]) for r in rows] == pe["train_loss"]
    assert [float(r["val_accuracy"]) for r in rows] == pe["val_accuracy"]

    # the saved model reproduces metrics.json on the test split, from the raw data
    metrics = read_json(out / "metrics.json")
    data = load_dataset("moons", samples=200, seed=0)
    with np.load(out / "split.npz", allow_pickle=False) as z:
        test, tr = z["test"], z["train"]
    with np.load(out / "model.npz", allow_pickle=False) as z:  # parameters by their layout names
        assert sorted(z.files) == ["dropout_counters"] + [f"params/{i}.{p}" for i in (0, 2, 4) for p in "Wb"]
    run = load_run_model(out, spec)
    assert run.model.sizes == [2, 16, 8, 1] and run.model.backend.spec == config["backend"]
    np.testing.assert_allclose(run.scaler.mean, data.X[tr].mean(axis=0))  # training statistics only
    np.testing.assert_allclose(run.scaler.std, data.X[tr].std(axis=0))
    pred = run.predict(data.X[test])
    assert metrics["accuracy"] == np.mean(pred == data.y[test])
    cm = np.asarray(metrics["confusion_matrix"])
    assert cm.sum() == 40 == metrics["n"] and np.trace(cm) / 40 == metrics["accuracy"]
    proba = run.predict_proba(data.X[test])  # xpnet.metrics on the device agree with scikit-learn on the host
    assert metrics["log_loss"] == pytest.approx(skm.log_loss(data.y[test], proba), rel=1e-5)
    assert metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(data.y[test], proba[:, 1]), abs=1e-6)
    assert metrics["f1"] == pytest.approx(skm.f1_score(data.y[test], pred))
    # ... and on another backend
    assert np.array_equal(load_run_model(out, "numpy").predict(data.X[test]), pred)

    assert str(out) in proc.stdout and f"accuracy {metrics['accuracy']:.4f}" in proc.stdout


def test_train_help_explains_every_flag(capsys):
    assert train.main(["--help"]) == 0
    text = capsys.readouterr().out
    for flag in ["--backend", "--device", "--dataset", "--target", "--task", "--hidden", "--activation", "--init",
                 "--loss", "--optimizer", "--lr", "--schedule", "--warmup", "--epochs", "--batch-size", "--dropout",
                 "--l2", "--weight-decay", "--clip-norm", "--val-split", "--test-split", "--early-stopping",
                 "--patience", "--seed", "--dtype", "--out", "--quiet", "--checkpoint-every", "--keep-last",
                 "--resume", "--batchnorm", "--residual", "--arch"]:
        assert flag in text, flag
    for word in ["moons", "breast_cancer", "nesterov", "rmsprop", "cosine", "float64", "checkpoint-NNNN.npz",
                 "BatchNorm1d", "Residual"]:
        assert word in text


def test_train_multiclass_with_all_training_options(tmp_path, capsys):
    out = tmp_path / "iris"
    rc = train.main(["--dataset", "iris", "--epochs", "40", "--hidden", "8", "--optimizer", "adamw",
                     "--weight-decay", "0.05", "--schedule", "cosine", "--warmup", "3", "--clip-norm", "0.5",
                     "--early-stopping", "--patience", "2", "--lr", "0.05", "--quiet", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    config, hist, metrics = (read_json(out / f) for f in ("config.json", "history.json", "metrics.json"))
    assert config["optimizer"]["name"] == "AdamW" and config["optimizer"]["weight_decay"] == 0.05
    assert config["schedule"]["name"] == "Warmup" and config["schedule"]["after"]["name"] == "Cosine"
    assert config["settings"]["loss"] == "cross_entropy" and config["model"]["output"] == "softmax"
    lr = hist["per_epoch"]["lr"]  # 4 steps per epoch: warm-up ends in epoch 1, then the cosine decays
    assert lr[0] < 0.05 and all(a > b for a, b in zip(lr[1:], lr[2:]))
    assert hist["stopped_early"] and hist["epochs_run"] < 40 and hist["best_epoch"] == hist["epochs_run"] - 2
    assert metrics["task"] == "multiclass" and metrics["average"] == "macro" and metrics["classes"] == [0, 1, 2]
    assert np.asarray(metrics["confusion_matrix"]).shape == (3, 3) and 0 <= metrics["roc_auc"] <= 1
    assert not (out / "decision_boundary.png").exists()  # 4 features: no decision-boundary plot
    assert (out / "accuracy.png").is_file()


def test_train_regression_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = 100.0 + 30.0 * X[:, 0] - 10.0 * X[:, 1] + rng.normal(scale=0.5, size=200)
    path = write_csv(tmp_path / "houses.csv", ["a", "b", "c", "price"], np.column_stack([X, y]).tolist())
    out = tmp_path / "reg"
    rc = train.main(["--dataset", str(path), "--target", "price", "--epochs", "30", "--lr", "0.01", "--hidden", "16",
                     "--batch-size", "16", "--dropout", "0", "--quiet", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    metrics, meta = read_json(out / "metrics.json"), read_json(out / "model.json")
    assert metrics["task"] == "regression" and set(metrics) >= {"mse", "mae", "r2", "rmse"}
    assert metrics["r2"] > 0.9 and meta["target_standardize"] is not None and meta["model"]["output"] == "identity"
    with np.load(out / "split.npz") as z:
        test = z["test"]
    pred = load_run_model(out).predict(X[test])
    assert metrics["mse"] == pytest.approx(np.mean((pred - y[test]) ** 2), rel=1e-9)
    assert not (out / "accuracy.png").exists() and (out / "loss.png").is_file()


def test_train_npz_with_text_labels(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 2))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "cat", "dog")
    np.savez(tmp_path / "pets.npz", X=X, label=labels)
    out = tmp_path / "pets"
    rc = train.main(["--dataset", str(tmp_path / "pets.npz"), "--target", "label", "--epochs", "5", "--hidden", "8",
                     "--quiet", "--out", str(out), "--loss", "cross_entropy", "--backend", "strict:device1"])
    assert rc == 0, capsys.readouterr().err
    metrics = read_json(out / "metrics.json")
    assert metrics["classes"] == ["cat", "dog"] and metrics["task"] == "binary"
    run = load_run_model(out, "numpy")
    assert run.model.sizes[-1] == 2 and run.model.output == "softmax"  # cross_entropy: two softmax outputs
    with np.load(out / "split.npz") as z:
        test = z["test"]
    assert set(run.predict(X[test])) <= {"cat", "dog"}
    assert metrics["accuracy"] == np.mean(run.predict(X[test]) == labels[test])
    assert (out / "decision_boundary.png").is_file()


# --------------------------------------------------------------------------- bad input
def _bad_csvs(d: Path) -> dict[str, Path]:
    return {
        "no_target": write_csv(d / "no_target.csv", ["a", "b"], [[1, 2], [3, 4]]),
        "text": write_csv(d / "text.csv", ["a", "b", "y"], [[1, 2, 0], [3, "abc", 1], [5, 6, 0]]),
        "missing": write_csv(d / "missing.csv", ["a", "b", "y"], [[1, 2, 0], [3, "", 1], [5, 6, 0]]),
        "one_class": write_csv(d / "one_class.csv", ["a", "b", "y"], [[i, 2 * i, 1] for i in range(20)]),
    }


BAD_TRAIN = [
    (["--backend", "foo"], "unknown backend name"),
    (["--backend", "torch:cpu", "--device", "cuda"], "device given twice"),
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--dataset", "{d}/missing_file.csv", "--target", "y"], "dataset file not found"),
    (["--dataset", "{no_target}", "--target", "label"], "no target column 'label'"),
    (["--dataset", "{no_target}"], "--target COLUMN is required"),
    (["--dataset", "{text}", "--target", "y"], "non-numeric value 'abc' in feature column 'b'"),
    (["--dataset", "{missing}", "--target", "y"], "missing value in column 'b'"),
    (["--dataset", "{one_class}", "--target", "y"], "single class"),
    (["--hidden", "64,-3"], "hidden sizes must be positive integers"),
    (["--hidden", "64,abc"], "hidden sizes must be positive integers"),
    (["--hidden", "0"], "hidden sizes must be positive integers"),
    (["--lr", "0"], "argument --lr: must be a number > 0"),
    (["--lr", "-0.1"], "argument --lr: must be a number > 0"),
    (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1"),
    (["--test-split", "1.5"], "argument --test-split: must be a fraction in [0, 1)"),
    (["--val-split", "1"], "argument --val-split: must be a fraction in [0, 1)"),
    (["--epochs", "0"], "argument --epochs: must be an integer >= 1"),
    (["--epochs", "ten"], "argument --epochs: expected an integer"),
    (["--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    (["--weight-decay", "0.1"], "--weight-decay applies to --optimizer adamw"),
    (["--patience", "3"], "--patience needs --early-stopping"),
    (["--dataset", "iris", "--loss", "bce"], "needs a binary task"),
    (["--target", "y"], "--target applies to CSV and NPZ files"),
]


@pytest.mark.parametrize("argv,message", BAD_TRAIN, ids=[" ".join(a) for a, _ in BAD_TRAIN])
def test_train_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    paths = {"d": tmp_path, **_bad_csvs(tmp_path)}
    out = tmp_path / "out"
    rc = train.main([a.format(**paths) for a in argv] + ["--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert not out.exists()  # nothing is written for bad input


@pytest.mark.skipif(has("cupy"), reason="cupy works here")
def test_missing_backend_library_names_the_install_command(capsys):
    assert train.main(["--backend", "cupy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: backend 'cupy' is not available") and "pip install" in err


def test_value_error_from_xpnet_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise ValueError("X has 3 features but the model expects 2\n(a second line)")

    monkeypatch.setattr(train.xpnet, "fit", boom)
    rc = train.main(SMALL + ["--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err == "error: X has 3 features but the model expects 2 (a second line)\n"


@pytest.mark.parametrize("argv,message", [
    (["--backend", "foo", "--lr", "1"], "unknown backend name"),
    (["--dataset", "no/such/file.csv", "--target", "y"], "dataset file not found: no/such/file.csv"),
    (["--hidden", "3,x"], "hidden sizes must be positive integers"),
])
def test_train_bad_input_subprocess_has_no_traceback(argv, message):
    proc = run_script("train", *argv)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and message in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def _start_long_training(out) -> subprocess.Popen:
    """Start a (practically endless) train.py run writing to ``out``; return once training has begun."""
    cmd = [sys.executable, str(SCRIPTS / "train.py"), "--epochs", "100000", "--samples", "1000", "--hidden", "16",
           "--quiet", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    deadline = time.monotonic() + 60
    while not (out / "config.json").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if not (out / "config.json").exists():
        proc.kill()
        raise AssertionError("training did not start")
    return proc



@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGINT")
def test_train_ctrl_c_saves_what_exists_and_exits_130(tmp_path):
    out = tmp_path / "interrupted"
    proc = _start_long_training(out)
    try:
        time.sleep(1.0)  # a few epochs (about 5 ms each)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted (Ctrl-C) after" in stderr and "Traceback" not in stderr
    hist = read_json(out / "history.json")
    done = hist["epochs_run"]
    assert hist["interrupted"] and 1 <= done < 100000
    assert len(hist["per_epoch"]["train_loss"]) == done and len(hist["per_step"]["loss"]) == done * 23
    with open(out / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == done
    assert read_json(out / "config.json")["settings"]["epochs"] == 100000
    run = load_run_model(out)  # the model at that point reloads ...
    assert run.model.sizes == [2, 16, 1] and np.all(np.isfinite(run.predict_proba(np.zeros((3, 2)))))
    ck = xpnet.checkpoint.load(out / "checkpoint.npz")  # ... and so does the full training state
    assert ck.meta["epoch"] == done and ck.meta["extra"]["standardize"]["mean"] == run.scaler.mean.tolist()
    np.testing.assert_array_equal(ck.arrays["params"], backends.to_numpy(run.model.params))
    assert not (out / "metrics.json").exists()


# --------------------------------------------------------------------------- checkpoints and --resume
def _main_ok(capsys, *argv) -> str:
    rc = train.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out + err


def _params(run_dir: Path) -> dict:
    with np.load(run_dir / "model.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 6-epoch run and a 3-epoch run of the same flags (in this process)."""
    d = tmp_path_factory.mktemp("resume")
    for epochs in (6, 3):
        assert train.main(["--epochs", str(epochs), *SMALL, "--out", str(d / f"e{epochs}")]) == 0
    return d


def test_resume_is_bit_identical_to_an_uninterrupted_run(runs, tmp_path, capsys):
    out = tmp_path / "resumed"
    text = _main_ok(capsys, "--resume", runs / "e3" / "checkpoint.npz", "--epochs", 6, "--quiet", "--out", out)
    assert "resumed   from" in text and "trained epochs 4-6 here" in text
    full, res = read_json(runs / "e6" / "history.json"), read_json(out / "history.json")
    assert res["epochs_run"] == 6 and res["per_epoch"]["epoch"] == [1, 2, 3, 4, 5, 6]
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr", "grad_norms"):
        assert res["per_epoch"][key] == full["per_epoch"][key], key
    assert res["per_step"] == full["per_step"] and len(res["per_step"]["loss"]) == 6 * STEPS
    a, b = _params(runs / "e6"), _params(out)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)  # bit for bit
    assert read_json(out / "metrics.json")["accuracy"] == read_json(runs / "e6" / "metrics.json")["accuracy"]
    with open(out / "history.csv") as f:
        assert [float(r["train_loss"]) for r in csv.DictReader(f)] == full["per_epoch"]["train_loss"]
    ck = xpnet.checkpoint.load(out / "checkpoint.npz")
    assert ck.epoch == 6 and ck.extra["settings"]["epochs"] == 6 and ck.extra["settings"]["hidden"] == [16, 8]
    config = read_json(out / "config.json")
    assert config["resumed_from"]["epoch"] == 3 and config["settings"]["hidden"] == [16, 8]
    np.testing.assert_array_equal(np.load(out / "split.npz")["train"], np.load(runs / "e3" / "split.npz")["train"])

    # a finished run: --resume says so, writes the outputs and exits 0; the default --epochs is the run's own
    done = tmp_path / "done"
    text = _main_ok(capsys, "--resume", runs / "e6", "--quiet", "--out", done)
    assert "already complete (6 of 6 epochs done)" in text and "nothing left to train" in text
    assert read_json(done / "history.json")["per_step"] == full["per_step"]
    assert all(np.array_equal(a[k], _params(done)[k]) for k in a)
    assert xpnet.checkpoint.load(done / "checkpoint.npz").epoch == 6 and (done / "metrics.json").is_file()


@pytest.mark.parametrize("spec", ["strict:device1"] + (["torch:cpu"] if has("torch:cpu") else []))
def test_resume_a_numpy_checkpoint_on_another_backend(runs, tmp_path, capsys, spec):
    out = tmp_path / spec.replace(":", "-")
    _main_ok(capsys, "--resume", runs / "e3" / "checkpoint.npz", "--epochs", 6, "--backend", spec, "--quiet",
             "--out", out)
    full, res = read_json(runs / "e6" / "history.json"), read_json(out / "history.json")
    assert read_json(out / "config.json")["backend"] == backends.get(spec).spec
    assert res["per_step"]["loss"][:3 * STEPS] == full["per_step"]["loss"][:3 * STEPS]  # the numpy part, as saved
    np.testing.assert_allclose(res["per_step"]["loss"], full["per_step"]["loss"], rtol=1e-4)
    np.testing.assert_allclose(res["per_epoch"]["val_loss"], full["per_epoch"]["val_loss"], rtol=1e-4)
    a, b = _params(runs / "e6"), _params(out)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-6)
    assert xpnet.checkpoint.load(out / "checkpoint.npz").meta["backend"] == backends.get(spec).spec
    # without --backend a resume stays on the backend the checkpoint was saved on
    again = tmp_path / "again"
    _main_ok(capsys, "--resume", out, "--epochs", 7, "--quiet", "--out", again)
    assert read_json(again / "config.json")["backend"] == backends.get(spec).spec


def test_checkpoint_every_keeps_the_last_k(tmp_path, capsys):
    out = tmp_path / "periodic"
    text = _main_ok(capsys, "--epochs", 4, *SMALL, "--checkpoint-every", 1, "--keep-last", 2, "--out", out)
    names = sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint"))
    assert names == ["checkpoint-0003.npz", "checkpoint-0004.npz", "checkpoint.npz"]
    assert "checkpoint-0004.npz" in text
    final, last = xpnet.checkpoint.load(out / "checkpoint.npz"), xpnet.checkpoint.load(out / "checkpoint-0004.npz")
    assert final.epoch == last.epoch == 4 and xpnet.checkpoint.load(out / "checkpoint-0003.npz").epoch == 3
    for k in last.arrays:
        np.testing.assert_array_equal(final.arrays[k], last.arrays[k])
    # a periodic checkpoint resumes like the final one: 3 -> 4 epochs gives the same parameters
    again = tmp_path / "again"
    _main_ok(capsys, "--resume", out / "checkpoint-0003.npz", "--epochs", 4, "--quiet", "--out", again)
    a, b = _params(out), _params(again)
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGTERM")
def test_sigterm_saves_a_checkpoint_prints_how_to_resume_and_exits_143(tmp_path, capsys):
    out = tmp_path / "terminated"
    proc = _start_long_training(out)
    try:
        time.sleep(1.0)  # well into training (a few ms per epoch)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "interrupted (SIGTERM) after" in stderr and "Traceback" not in stderr and stderr.count("\n") == 1
    hint = stderr.split("resume with: ", 1)[1].split()
    assert hint[:3] == ["python", os.path.join("scripts", "train.py"), "--resume"]
    assert Path(hint[3]) == out / "checkpoint.npz"
    hist = read_json(out / "history.json")
    done = hist["epochs_run"]
    assert hist["interrupted"] and done >= 1
    ck = xpnet.checkpoint.load(hint[3])
    assert ck.epoch == done and ck.fit_config["epochs"] == 100000

    resumed = tmp_path / "resumed"  # the printed command, with a reachable --epochs
    text = _main_ok(capsys, "--resume", hint[3], "--epochs", done + 2, "--quiet", "--out", resumed)
    assert f"epochs {done + 1}-{done + 2} here" in text
    res = read_json(resumed / "history.json")
    assert res["epochs_run"] == done + 2 and not res["interrupted"]
    assert len(res["per_step"]["loss"]) == (done + 2) * 23
    assert res["per_step"]["loss"][:done * 23] == hist["per_step"]["loss"]
    assert (resumed / "metrics.json").is_file()


def _newer_format(src: Path, dst: Path) -> Path:
    """A copy of a checkpoint claiming the format version after this xpnet's."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "__meta__.npy":
                meta = json.loads(bytes(np.load(src)["__meta__"]).decode())
                meta["format_version"] = xpnet.checkpoint.FORMAT_VERSION + 1
                arr = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
                import io

                buf = io.BytesIO()
                np.save(buf, arr)
                data = buf.getvalue()
            zout.writestr(info.filename, data)
    return dst


BAD_RESUME = [
    (["--resume", "{d}/nope.npz"], "checkpoint '{d}/nope.npz': no such file"),
    (["--resume", "{d}/notes.txt"], "is not an xpnet checkpoint (not an .npz/zip file)"),
    (["--resume", "{run}/split.npz"], "is not an xpnet checkpoint (an .npz without __meta__)"),
    (["--resume", "{d}/truncated.npz"], "is truncated or corrupted"),
    (["--resume", "{d}/newer.npz"], f"reads formats up to {xpnet.checkpoint.FORMAT_VERSION}: upgrade xpnet"),
    (["--resume", "{d}/library.npz"], "was not written by scripts/train.py"),
    (["--resume", "{d}"], "the folder holds no checkpoint.npz"),
    (["--resume", "{run}", "--hidden", "32"], "--hidden 32 (the checkpoint has 16,8)"),
    (["--resume", "{run}", "--batchnorm"], "--batchnorm on (the checkpoint has off)"),
    (["--resume", "{run}", "--arch", "{d}/notes.txt"], "--arch {d}/notes.txt (the checkpoint has none)"),
    (["--resume", "{run}", "--lr", "0.01", "--dropout", "0.1"], "--lr 0.01 (the checkpoint has 0.001)"),
    (["--resume", "{run}", "--dataset", "iris"], "--dataset iris (the checkpoint has moons)"),
    (["--resume", "{run}", "--epochs", "2"], "has completed 3 epochs; --epochs is the total number of epochs"),
    (["--checkpoint-every", "0"], "argument --checkpoint-every: must be an integer >= 1"),
    (["--checkpoint-every", "2", "--keep-last", "0"], "argument --keep-last: must be an integer >= 1"),
    (["--keep-last", "2"], "--keep-last needs --checkpoint-every"),
]


@pytest.mark.parametrize("argv,message", BAD_RESUME, ids=[" ".join(a) for a, _ in BAD_RESUME])
def test_bad_resume_is_one_line_exit_2(runs, tmp_path, capsys, argv, message):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "notes.txt").write_text("not a checkpoint\n")
    good = (runs / "e3" / "checkpoint.npz").read_bytes()
    (d / "truncated.npz").write_bytes(good[:len(good) // 2])
    _newer_format(runs / "e3" / "checkpoint.npz", d / "newer.npz")
    xpnet.checkpoint.save(d / "library.npz", xpnet.MLP([2, 3, 1]), epoch=1)
    paths = {"d": d, "run": runs / "e3"}
    out = tmp_path / "out"
    rc = train.main([a.format(**paths) for a in argv] + ["--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message.format(**paths) in err and "Traceback" not in err
    assert not out.exists()


def test_bad_resume_subprocess_has_no_traceback(runs):
    proc = run_script("train", "--resume", runs / "e3", "--hidden", "8")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "--hidden 8 (the checkpoint has 16,8)" in proc.stderr and "may change" in proc.stderr


def test_resume_finds_moved_data_only_when_it_is_the_same(tmp_path, capsys):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 2))
    rows = np.column_stack([X, (X[:, 0] > X[:, 1]).astype(int)]).tolist()
    data = write_csv(tmp_path / "data.csv", ["a", "b", "y"], rows)
    run = tmp_path / "run"
    _main_ok(capsys, "--dataset", data, "--target", "y", "--epochs", 2, "--hidden", "8", "--quiet", "--out", run)
    moved = tmp_path / "moved.csv"
    data.rename(moved)
    assert train.main(["--resume", str(run), "--epochs", "3", "--quiet", "--out", str(tmp_path / "x")]) == 2
    assert "dataset file" in capsys.readouterr().err and not (tmp_path / "x").exists()
    rows[5][0] += 1.0
    other = write_csv(tmp_path / "other.csv", ["a", "b", "y"], rows)
    assert train.main(["--resume", str(run), "--dataset", str(other), "--epochs", "3", "--quiet"]) == 2
    assert "is not the data the checkpoint was trained on" in capsys.readouterr().err
    out = tmp_path / "resumed"
    _main_ok(capsys, "--resume", run, "--dataset", moved, "--target", "y", "--epochs", 3, "--quiet", "--out", out)
    assert read_json(out / "history.json")["epochs_run"] == 3


# --------------------------------------------------------------------------- parity.py
def test_parity_end_to_end_numpy_strict(tmp_path, capsys):
    out = tmp_path / "parity"
    proc = run_script("parity", "--backends", "numpy,strict,strict:device1", "--epochs", "2", *SMALL, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and (out / "parity.png").read_bytes()[:8] == PNG
    rep = read_json(out / "parity.json")
    assert rep["passed"] and rep["reference"] == "numpy" and rep["tolerance"] == 1e-4 and rep["tolerance_is_default"]
    assert [b["spec"] for b in rep["backends"]] == ["numpy", "strict", "strict:device1"]
    for b in rep["backends"]:
        assert b["init_bit_identical"] and b["dropout_masks_bit_identical"] and b["pass"]
        assert b["steps"] == 2 * STEPS and b["max_rel_loss_deviation"] <= 1e-4
    assert len(rep["step_loss"]["strict:device1"]) == 2 * STEPS == len(rep["rel_loss_deviation"]["strict"])
    for line in ("strict:device1", "identical", "PASS", str(out)):
        assert line in proc.stdout

    # the reference curve is exactly what train.py records for the same flags
    rc = train.main(["--epochs", "2", *SMALL, "--out", str(tmp_path / "train")])
    assert rc == 0, capsys.readouterr().err
    assert read_json(tmp_path / "train" / "history.json")["per_step"]["loss"] == rep["step_loss"]["numpy"]


@pytest.mark.skipif(not has("torch:cpu"), reason="needs torch")
def test_parity_exits_1_above_tolerance(tmp_path, capsys):
    out = tmp_path / "p"
    rc = parity.main(["--backends", "numpy,torch:cpu", "--epochs", "2", *SMALL, "--tol", "1e-15", "--out", str(out)])
    stdout = capsys.readouterr().out
    rep = read_json(out / "parity.json")
    assert rc == 1 and not rep["passed"] and "FAIL" in stdout
    torch_row = rep["backends"][1]
    assert torch_row["init_bit_identical"] and torch_row["dropout_masks_bit_identical"]  # same bits at the start
    assert 1e-15 < max(torch_row["max_rel_loss_deviation"], torch_row["max_rel_param_diff"]) <= 1e-4


BAD_PARITY = [
    (["--backends", "numpy"], "needs at least two backends"),
    (["--backends", "numpy,foo"], "unknown backend name"),
    (["--backends", "numpy,numpy"], "same backend twice"),
    (["--tol", "0"], "argument --tol: must be a number > 0"),
    (["--epochs", "0"], "argument --epochs: must be an integer >= 1"),
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--hidden", "-1"], "hidden sizes must be positive integers"),
    (["--arch", "no/such/arch.json"], "--arch no/such/arch.json: cannot read it"),
    (["--arch", "arch.json", "--hidden", "8"], "--arch describes the whole network: drop --hidden"),
]


@pytest.mark.parametrize("argv,message", BAD_PARITY, ids=[" ".join(a) for a, _ in BAD_PARITY])
def test_parity_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    rc = parity.main(argv + ["--quiet", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()
