"""The tutorials' recipes from the command line (the README's one-liners, with the numbers it quotes) and the
flags of issue 13: --precision, --lr-find / --lr auto, --diagnostics, --threads, --test-split 0,
--val-split 0, --features, --batch-size full, --hidden WIDTHxDEPTH; their bad inputs (docs/bad_inputs.md);
epochs numbered from 1 in the API (and 0-based histories of older checkpoints renumbered); the estimators'
``precision``; the one line pytest prints when torch is absent.

The recipes run in this process (``train.main``) with the README's flags; the deep-network story and
float16 use fewer epochs than the README where that keeps the claim (noted at each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import xpnet
import xpnet.checkpoint
from tests.conftest import TORCH_EXTRA, torch_summary
from tests.test_scripts import ENV, ROOT, SCRIPTS, SMALL, has, read_json, train
from _cli.data import load_dataset  # noqa: E402 - scripts/ is on sys.path once tests.test_scripts is imported
from _cli.runmodel import load_run_model  # noqa: E402

XOR = ["--dataset", "xor4", "--test-split", "0", "--val-split", "0", "--hidden", "2", "--activation", "sigmoid",
       "--dropout", "0", "--l2", "0", "--optimizer", "sgd", "--lr", "1", "--batch-size", "full", "--epochs", "3000"]
CLASSIFICATION = ["--dataset", "classification", "--features", "10", "--hidden", "8,4", "--activation", "sigmoid",
                  "--dropout", "0", "--optimizer", "sgd", "--lr", "1", "--batch-size", "full", "--epochs", "1000"]
DEEP = ["--dataset", "digits", "--hidden", "64x20", "--activation", "sigmoid", "--dropout", "0", "--l2", "0",
        "--lr", "3e-3", "--batch-size", "64", "--epochs", "20", "--diagnostics"]


def _train(capsys, out: Path, *argv) -> tuple[str, str]:
    rc = train.main([str(a) for a in argv] + ["--quiet", "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert rc == 0, stderr
    return stdout, stderr


def _line(stdout: str, label: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(f"  {label} "))


# ------------------------------------------------------------------------------------------ the recipes
def test_recipe_xor_learns_all_four_rows(tmp_path, capsys):
    out = tmp_path / "xor"
    stdout, stderr = _train(capsys, out, *XOR)
    assert stderr == ""  # no small-split note: there is no test split
    metrics, config, hist = (read_json(out / f) for f in ("metrics.json", "config.json", "history.json"))
    assert metrics["split"] == "train" and metrics["n"] == 4 and metrics["accuracy"] == 1.0
    assert "training data" in metrics["note"] and config["data"]["splits"] == {"train": 4, "val": 0, "test": 0}
    assert config["model"]["sizes"] == [2, 2, 1] and hist["steps_per_epoch"] == 1
    assert hist["per_epoch"]["val_loss"] == [None] * 3000 and hist["per_epoch"]["epoch"][-1] == 3000
    with np.load(out / "split.npz") as z:
        assert z["train"].tolist() == [0, 1, 2, 3] and z["test"].size == 0
    assert "batch full (4 rows)" in _line(stdout, "training") and "x 1 step" in _line(stdout, "training")
    assert "(no validation split)" in _line(stdout, "final")
    assert _line(stdout, "train").startswith("  train     accuracy 1.0000") and "--test-split 0" in stdout
    assert load_run_model(out).predict(np.array([[0, 0], [0, 1], [1, 0], [1, 1]])).tolist() == [0, 1, 1, 0]


def test_xor4_is_the_truth_table_and_small_splits_get_a_note(tmp_path, capsys):
    data = load_dataset("xor4")
    assert data.X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and data.y.tolist() == [0, 1, 1, 0]
    rc = train.main(["--dataset", "xor4", "--epochs", "1", "--quiet", "--out", str(tmp_path / "o")])
    assert rc == 0
    err = capsys.readouterr().err
    assert err.startswith("note: the test split holds 1 of 4 rows") and "--test-split 0" in err


def test_recipe_classification_with_10_features_by_full_batch_gradient_descent(tmp_path, capsys):
    out = tmp_path / "cls"
    stdout, _ = _train(capsys, out, *CLASSIFICATION)
    config, metrics, hist = (read_json(out / f) for f in ("config.json", "metrics.json", "history.json"))
    assert config["data"]["n_features"] == 10 and config["model"]["sizes"] == [10, 8, 4, 1]
    assert config["model"]["activation"] == "sigmoid" and config["optimizer"]["name"] == "SGD"
    assert hist["steps_per_epoch"] == 1 and len(hist["per_step"]["loss"]) == 1000
    assert metrics["accuracy"] >= 0.95, metrics  # the README quotes 0.9600
    assert "batch full (720 rows)" in stdout


def test_features_default_is_todays_generator():
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=1000, n_features=20, n_informative=10, n_redundant=5, random_state=0)
    data = load_dataset("classification")
    assert np.array_equal(data.X, X) and np.array_equal(data.y, y)
    assert load_dataset("classification", features=10, samples=50).X.shape == (50, 10)
    assert load_dataset("classification", features=2, samples=50).X.shape == (50, 2)


def test_recipe_moons_default(tmp_path, capsys):
    out = tmp_path / "moons"
    stdout, _ = _train(capsys, out)
    metrics = read_json(out / "metrics.json")
    assert metrics["split"] == "test" and metrics["n"] == 200 and metrics["accuracy"] >= 0.95  # README: 0.9550
    assert _line(stdout, "test").startswith("  test      accuracy ") and "(macro)" not in stdout


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    """The README's deep-network recipe, plain, with --residual and with --batchnorm: (stdout, stderr, folder)."""
    runs = {}
    for kind in ("plain", "residual", "batchnorm"):
        out = tmp_path_factory.mktemp("deep") / kind
        rc = train.main(DEEP + ([f"--{kind}"] if kind != "plain" else []) + ["--quiet", "--out", str(out)])
        assert rc == 0
        runs[kind] = out
    return runs


def test_recipe_deep_network_learns_only_with_residual_or_batchnorm(deep):
    acc = {k: read_json(out / "metrics.json")["accuracy"] for k, out in deep.items()}
    assert acc["plain"] < 0.2 and acc["residual"] >= 0.95 and acc["batchnorm"] >= 0.9, acc  # README: 0.10/0.98/0.96
    config = read_json(deep["plain"] / "config.json")
    assert config["model"]["sizes"] == [64] + [64] * 20 + [10]


def test_recipe_diagnostics_table_warnings_and_plot(deep, tmp_path, capsys):
    out = tmp_path / "again"  # the plain run again, to see what it prints
    rc = train.main(DEEP + ["--epochs", "3", "--quiet", "--out", str(out)])
    stdout, stderr = capsys.readouterr()
    assert rc == 0
    warned = stderr.splitlines()
    assert warned and all(w.startswith("warning: epoch ") and "vanishing gradients" in w for w in warned), stderr
    assert any(w.startswith("warning: epoch 1: layer 0 (Dense 64->64, sigmoid)") for w in warned)
    assert len({w.split(": ", 2)[2].split(":")[0] for w in warned}) == len(warned)  # once per layer
    table = stdout.split("  diagnostics of epoch 3's last batch", 1)[1].splitlines()[1:23]
    assert table[0].split()[:3] == ["layer", "Dense", "activation"] and table[-1].split()[:4] == \
        ["20", "Dense", "64->10", "softmax"]
    assert "MLP [64, 64x20, 10] sigmoid -> softmax" in stdout and "precision (macro)" in stdout
    hist = read_json(deep["plain"] / "history.json")
    first = hist["per_epoch"]["diagnostics"][0]
    assert len(hist["per_epoch"]["diagnostics"]) == 20 and len(first) == 21
    assert first[0]["grad_mean_abs"] < 1e-9 < 1e-3 < first[-1]["grad_mean_abs"]  # vanishing towards the input
    assert (deep["plain"] / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"
    residual = read_json(deep["residual"] / "history.json")["per_epoch"]["diagnostics"][-1]
    assert residual[0]["grad_mean_abs"] > 1e-5  # the same depth keeps its gradients with residual blocks


def test_recipe_lr_find_and_lr_auto(tmp_path, capsys):
    out = tmp_path / "find"
    stdout, _ = _train(capsys, out, "--lr-find")
    assert sorted(p.name for p in out.iterdir()) == ["lr_find.json", "lr_find.png"]  # nothing trained
    found = read_json(out / "lr_find.json")
    assert 1e-3 <= found["suggestion"] <= 1e-2, found["suggestion"]  # moons, Adam: the README quotes 0.00285
    assert found["rule"] in stdout and f"suggested learning rate {found['suggestion']:.3g}" in stdout
    assert len(found["lrs"]) == len(found["smoothed"]) == found["steps"] and found["settings"]["lr_find"]
    assert (out / "lr_find.png").read_bytes()[:4] == b"\x89PNG"

    auto = tmp_path / "auto"
    stdout, _ = _train(capsys, auto, "--lr", "auto", "--epochs", "2")
    config = read_json(auto / "config.json")
    assert config["settings"]["lr"] == config["lr_find"]["suggestion"] == found["suggestion"] == \
        config["optimizer"]["lr"]
    assert f"adam lr {found['suggestion']:.3g} from --lr auto" in stdout and (auto / "lr_find.png").is_file()
    resumed = tmp_path / "resumed"  # the rate found is a saved setting like any other
    _train(capsys, resumed, "--resume", auto, "--epochs", "3")
    assert read_json(resumed / "config.json")["settings"]["lr"] == found["suggestion"]


def test_recipe_float16_reaches_float32_accuracy(tmp_path, capsys):
    """The README runs 200 epochs; 40 already show the same accuracy (float16 matmuls are slow on NumPy)."""
    acc = {}
    for precision in ("float32", "float16"):
        out = tmp_path / precision
        stdout, _ = _train(capsys, out, "--precision", precision, "--epochs", "40")
        acc[precision] = read_json(out / "metrics.json")["accuracy"]
    assert abs(acc["float16"] - acc["float32"]) <= 0.01 and acc["float16"] >= 0.95, acc
    assert "float16 compute, float32 master weights, dynamic loss scaling" in stdout
    assert "; loss scale 65536, 0 steps skipped" in _line(stdout, "final")
    hist = read_json(tmp_path / "float16" / "history.json")["per_epoch"]
    assert hist["loss_scale"] == [65536.0] * 40 and hist["skipped_steps"] == [0] * 40
    assert all(0 < v < 10 for row in hist["grad_norms"] for v in row)  # of the float32 master gradients
    ck = xpnet.checkpoint.load(tmp_path / "float16" / "checkpoint.npz")
    assert ck.model_config["precision"] == "float16" and ck.arrays["params"].dtype == np.float32


# ------------------------------------------------------------------------------------------ other flags
def test_help_explains_the_new_flags(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps to the terminal: no line breaks inside words
    assert train.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ["--precision {float32,float16,bfloat16}", "dynamic loss scaling", "--lr-find", "lr_find.png",
                  "auto: run the learning-rate finder", "--diagnostics", "diagnostics.png", "--threads N",
                  "XPNET_THREADS", "threadpoolctl", "--features N", "default 20", "xor4 is the 4-row XOR truth table",
                  "'full' for full-batch gradient descent", "0: no test split, train on everything",
                  "0: no validation, so no --early-stopping", "64x20"]:
        assert words in text, words


def test_full_batch_is_any_batch_at_least_the_training_rows(tmp_path, capsys):
    for name, batch in (("full", "full"), ("big", "100000")):
        _train(capsys, tmp_path / name, *SMALL, "--batch-size", batch, "--epochs", "3")
    a, b = (read_json(tmp_path / n / "history.json") for n in ("full", "big"))
    assert a["steps_per_epoch"] == 1 and a["per_step"] == b["per_step"]


def test_no_validation_split(tmp_path, capsys):
    out = tmp_path / "noval"
    stdout, _ = _train(capsys, out, *SMALL, "--val-split", "0", "--epochs", "2")
    config, hist = read_json(out / "config.json"), read_json(out / "history.json")
    assert config["data"]["splits"] == {"train": 160, "val": 0, "test": 40}
    assert hist["per_epoch"]["val_loss"] == [None, None] and "(no validation split)" in stdout


def test_hidden_width_times_depth():
    from _cli.args import hidden_sizes

    assert hidden_sizes("64x3,8") == [64, 64, 64, 8] and hidden_sizes("16") == [16] and hidden_sizes("none") == []


@pytest.mark.skipif(not has("torch:cpu"), reason="needs torch")
def test_threads_flag_sets_torch_threads_before_the_backend_is_made(tmp_path):
    out = tmp_path / "threads"
    proc = subprocess.run([sys.executable, str(SCRIPTS / "train.py"), "--backend", "torch:cpu", "--threads", "2",
                           *SMALL, "--epochs", "1", "--out", str(out)], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=180)
    assert proc.returncode == 0, proc.stderr
    config = read_json(out / "config.json")
    assert config["settings"]["threads"] == 2 and "2 threads" in config["backend_description"]


def test_set_threads(monkeypatch):
    import backends

    monkeypatch.setenv("XPNET_THREADS", "1")  # restored afterwards
    try:
        assert backends.set_threads(1)["torch"] == 1 and os.environ["XPNET_THREADS"] == "1"
        with pytest.raises(ValueError, match="threads must be an integer >= 1"):
            backends.set_threads(0)
    finally:
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)


# ------------------------------------------------------------------------------------------ bad input
BAD = [
    ("precision-strict", ["--precision", "float16", "--backend", "strict"], "backend 'strict' has no float16"),
    ("precision-float64", ["--precision", "float16", "--dtype", "float64"], "keeps float32 master parameters"),
    ("precision-unknown", ["--precision", "half"], "argument --precision: invalid choice: 'half'"),
    ("lr-find-with-lr", ["--lr-find", "--lr", "0.1"], "--lr-find sweeps the learning rate itself: drop --lr"),
    ("lr-find-resume", ["--lr-find", "--resume", "{run}"], "--lr-find applies to a new run, not to --resume"),
    ("lr-not-a-number", ["--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
    ("lr-auto-resume", ["--resume", "{run}", "--lr", "auto"], "--lr auto (the checkpoint has 0.001)"),
    ("diagnostics-resume", ["--resume", "{run}", "--diagnostics"], "--diagnostics on (the checkpoint has off)"),
    ("threads-zero", ["--threads", "0"], "argument --threads: must be an integer >= 1"),
    ("test-split-one", ["--test-split", "1"], "argument --test-split: must be a fraction in [0, 1)"),
    ("val-split-negative", ["--val-split", "-0.1"], "argument --val-split: must be a fraction in [0, 1)"),
    ("early-stopping-without-validation", ["--val-split", "0", "--early-stopping"],
     "--early-stopping needs validation data: drop --val-split 0"),
    ("features-other-dataset", ["--features", "10"], "--features applies to the generated classification dataset"),
    ("features-one", ["--dataset", "classification", "--features", "1"], "needs at least 2 features"),
    ("batch-size-word", ["--batch-size", "half"], "argument --batch-size: expected an integer, got 'half'"),
    ("hidden-depth-zero", ["--hidden", "64x0"], "a width repeated as WIDTHxDEPTH"),
    ("xor4-samples", ["--dataset", "xor4", "--samples", "8"], "--samples applies to the generated datasets"),
]


@pytest.fixture(scope="module")
def run2(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("recipes") / "run"
    assert train.main([*SMALL, "--epochs", "2", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("argv,message", [pytest.param(a, m, id=i) for i, a, m in BAD])
def test_new_flags_bad_input_is_one_line_exit_2(run2, tmp_path, capsys, argv, message):
    capsys.readouterr()
    out = tmp_path / "out"
    rc = train.main([a.format(run=run2) for a in argv] + ["--quiet", "--epochs", "3", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_estimators_take_precision():
    from sklearn.datasets import make_moons

    X, y = make_moons(300, noise=0.2, random_state=0)
    scores = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        for precision in ("float32", "float16"):
            clf = xpnet.XPNetClassifier((16,), learning_rate_init=0.01, max_iter=300, random_state=0,
                                        precision=precision).fit(X, y)
            scores[precision] = clf.score(X, y)
    assert xpnet.XPNetClassifier().get_params()["precision"] == "float32"
    assert xpnet.XPNetRegressor().get_params()["precision"] == "float32"
    assert clf.model_.precision.compute == "float16" and clf.model_.dtype_name == "float32"  # float32 masters
    assert clf.coefs_[0].dtype == np.float32
    assert abs(scores["float16"] - scores["float32"]) <= 0.01 and scores["float16"] > 0.9, scores


@pytest.mark.parametrize("params,message", [
    pytest.param(dict(precision="float16", backend="strict"), "backend 'strict' has no float16", id="strict"),
    pytest.param(dict(precision="float16", solver="lbfgs"), "re-evaluates the loss and cannot train with loss "
                 "scaling", id="lbfgs"),
    pytest.param(dict(precision="half"), "unknown precision 'half'", id="unknown"),
])
def test_estimators_refuse_precision_they_cannot_compute(params, message):
    est = xpnet.XPNetClassifier((4,), max_iter=2, **params)
    with pytest.raises(ValueError) as info:
        est.fit(np.zeros((8, 2)), np.array([0, 1] * 4))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not hasattr(est, "model_") and not hasattr(est, "classes_")  # nothing changed


# ------------------------------------------------------------------------------------------ epochs from 1
def test_epochs_count_from_1_in_the_api():
    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    seen = []

    class Hooks(xpnet.Callback):
        def on_epoch_begin(self, epoch):
            seen.append(("begin", epoch))

        def on_epoch_end(self, epoch, logs):
            seen.append(("end", epoch))

    h = xpnet.fit(xpnet.MLP([3, 4, 1]), X, y, epochs=3, batch_size=10, callbacks=[Hooks()], validation_split=0.25)
    assert h["epoch"] == [1, 2, 3] and seen == [(k, e) for e in (1, 2, 3) for k in ("begin", "end")]
    assert h["best_epoch"] in h["epoch"] and h["val_loss"][h["best_epoch"] - 1] == min(h["val_loss"])


def test_format_2_histories_are_renumbered_on_load(tmp_path):
    """A checkpoint of the previous format stored 0-based epochs: they load (and resume) numbered from 1."""
    X, y = np.random.default_rng(1).normal(size=(40, 3)), np.arange(40) % 2
    kw = dict(epochs=2, batch_size=10, validation_split=0.25, seed=0)
    xpnet.fit(xpnet.MLP([3, 4, 1]), X, y, checkpoint=tmp_path / "c.npz", **kw)
    import io
    import zipfile

    with zipfile.ZipFile(tmp_path / "c.npz") as zf:
        raw = {i.filename: zf.read(i) for i in zf.infolist()}
    meta = json.loads(np.load(io.BytesIO(raw["__meta__.npy"])).tobytes())
    assert meta["format_version"] == 3 and meta["history"]["epoch"] == [1, 2]
    meta["format_version"] = 2  # as the previous version wrote it
    meta["history"]["epoch"] = [e - 1 for e in meta["history"]["epoch"]]
    meta["history"]["best_epoch"] -= 1
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
    raw["__meta__.npy"] = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "old.npz", "w") as zf:
        for name, data in raw.items():
            zf.writestr(name, data)
    old = xpnet.checkpoint.load(tmp_path / "old.npz")
    assert old.history["epoch"] == [1, 2] and old.history["best_epoch"] == meta["history"]["best_epoch"] + 1
    h = xpnet.fit(xpnet.MLP([3, 4, 1]), X, y, resume=old, **{**kw, "epochs": 4})
    assert h["epoch"] == [1, 2, 3, 4]
    full = xpnet.fit(xpnet.MLP([3, 4, 1]), X, y, **{**kw, "epochs": 4})
    assert h["step_loss"] == full["step_loss"] and h["best_epoch"] == full["best_epoch"]


# ------------------------------------------------------------------------------------------ without torch
def test_one_summary_line_says_what_the_absent_torch_skipped():
    class Report:
        def __init__(self, reason):
            self.longrepr = ("tests/test_x.py", 1, reason)

    skipped = [Report("Skipped: needs torch"), Report("Skipped: torch is not installed"), Report("Skipped: cupy")]
    line = torch_summary(skipped, installed=False)
    assert line == (f"torch is not installed: 2 torch tests skipped (the torch.autograd / torch.optim oracles and "
                    f"the torch backends); {TORCH_EXTRA} to run them")
    assert torch_summary(skipped, installed=True) is None


def test_pytest_without_torch_prints_the_line(tmp_path):
    """pytest in a process where importing torch fails (as where it is not installed)."""
    runner = tmp_path / "no_torch.py"
    runner.write_text("import sys\n"
                      "class Block:\n"
                      "    def find_spec(self, name, path=None, target=None):\n"
                      "        if name.split('.')[0] == 'torch':\n"
                      "            raise ImportError(name)\n"
                      "sys.meta_path.insert(0, Block())\n"
                      "import pytest\n"
                      "sys.exit(pytest.main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, str(runner), "tests/test_optim.py", "-q", "-p", "no:cacheprovider",
                           "-k", "torch or sgd"], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("torch is not installed:")]
    assert len(lines) == 1 and "torch tests skipped" in lines[0] and TORCH_EXTRA in lines[0], proc.stdout[-2000:]
