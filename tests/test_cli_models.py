"""scripts/train.py and parity.py model flags: --batchnorm, --residual, --arch; the saved model
(parameters and buffers by layout name, run folders of the previous version); resuming such runs.

Runs call the scripts' ``main(argv)`` in this process (see tests/test_scripts.py for the helpers).
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import backends
import xpnet
from tests.test_scripts import STEPS, parity, read_json, train  # train also puts scripts/ on sys.path

from _cli.data import load_dataset  # noqa: E402
from _cli.runmodel import load_run_model  # noqa: E402

OLD_RUN = Path(__file__).parent / "data" / "old_run"
# The --arch example: every layer type, the first n_in left to the data, a residual block, dropout.
ARCH = [{"type": "Dense", "n_in": None, "n_out": 16, "activation": "relu"}, {"type": "BatchNorm1d"},
        {"type": "Dropout", "p": 0.1},
        {"type": "Residual", "body": {"type": "Sequential", "layers": [
            {"type": "Dense", "n_out": 16, "activation": "tanh"}, {"type": "Dense", "n_out": 16}]}},
        {"type": "Dense", "n_out": 1}]
ARGS = ["--samples", "200", "--batch-size", "16", "--quiet"]  # test_scripts.SMALL without the MLP's --hidden


def write_arch(path: Path, layers) -> Path:
    path.write_text(layers if isinstance(layers, str) else json.dumps(layers))
    return path


def main_ok(capsys, *argv) -> str:
    rc = train.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def npz(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def check_reload(out: Path, spec: str = "numpy"):
    """The saved model reproduces metrics.json's test accuracy from the raw data; returns it."""
    data = load_dataset("moons", samples=200, seed=0)
    test = np.load(out / "split.npz")["test"]
    run = load_run_model(out, spec)
    assert np.mean(run.predict(data.X[test]) == data.y[test]) == read_json(out / "metrics.json")["accuracy"]
    return run


# --------------------------------------------------------------------------- --batchnorm, --residual
def test_batchnorm_residual_mlp_trains_saves_buffers_and_reloads(tmp_path, capsys):
    out = tmp_path / "bn"
    text = main_ok(capsys, "--epochs", 3, *ARGS, "--hidden", "16,16", "--batchnorm", "--residual", "--out", out)
    assert "model     MLP [2, 16, 16, 1] relu -> sigmoid, dropout 0.1, batchnorm, residual, " in text
    model_cfg = read_json(out / "config.json")["model"]
    assert model_cfg["batchnorm"] is model_cfg["residual"] is True
    # hidden layer 0 (2 -> 16) is Dense, BatchNorm1d, ReLU; hidden layer 1 (16 -> 16) the same inside a Residual
    assert [layer["type"] for layer in model_cfg["layers"]] == ["Sequential", "Dropout", "Residual", "Dropout", "Dense"]
    assert [layer["type"] for layer in model_cfg["layers"][0]["layers"]] == ["Dense", "BatchNorm1d", "ReLU"]
    saved = npz(out / "model.npz")
    assert {"params/0.0.W", "params/0.1.gamma", "params/2.body.0.W", "params/4.W", "buffers/0.1.running_mean",
            "buffers/2.body.1.running_var"} <= set(saved)
    assert np.any(saved["buffers/0.1.running_mean"] != 0)  # trained running statistics, not the initial zeros
    run = check_reload(out)
    assert isinstance(run.model, xpnet.MLP) and run.model.batchnorm and run.model.residual
    for name, value in run.model.state_dict()["buffers"].items():
        np.testing.assert_array_equal(value, saved[f"buffers/{name}"])
    check_reload(out, "strict:device1")


# --------------------------------------------------------------------------- --arch
def test_arch_file_trains_records_the_architecture_and_reloads(tmp_path, capsys):
    arch, out = write_arch(tmp_path / "arch.json", ARCH), tmp_path / "arch"
    text = main_ok(capsys, "--arch", arch, "--epochs", 3, *ARGS, "--out", out)
    assert "model     Network [Dense(2, 16, 'relu'), BatchNorm1d(" in text and "] -> sigmoid, 641 parameters" in text
    config = read_json(out / "config.json")
    layers = config["model"]["layers"]
    assert [layer["type"] for layer in layers] == [c["type"] for c in ARCH] and layers[0]["n_in"] == 2
    assert config["model"]["n_params"] == 641 and config["settings"]["arch"] == str(arch)
    assert config["settings"]["hidden"] is None and config["settings"]["dropout"] is None
    assert read_json(out / "model.json")["model"]["layers"] == layers
    hist = read_json(out / "history.json")
    assert all(len(g) == 4 for g in hist["per_epoch"]["grad_norms"])  # the four Dense layers
    assert len(hist["per_step"]["loss"]) == 3 * STEPS
    saved = npz(out / "model.npz")
    assert {"params/0.W", "params/1.gamma", "params/3.body.0.W", "params/3.body.1.W", "params/4.W",
            "buffers/1.running_mean"} <= set(saved)
    run = check_reload(out)
    assert type(run.model) is xpnet.Network and run.model.config() == read_json(out / "model.json")["model"]


def test_arch_multiclass(tmp_path, capsys):
    arch = write_arch(tmp_path / "arch.json", [{"type": "Dense", "n_out": 8, "activation": "gelu"},
                                               {"type": "Dense", "n_out": 3}])
    out = tmp_path / "iris"
    main_ok(capsys, "--dataset", "iris", "--arch", arch, "--epochs", 5, "--quiet", "--out", out)
    assert read_json(out / "metrics.json")["task"] == "multiclass"
    assert load_run_model(out).model.output == "softmax"


DENSE = {"type": "Dense", "n_out": 16, "activation": "relu"}
BAD_ARCH = [
    ("[{", [], "is not valid JSON"),
    ('{"type": "Dense", "n_out": 1}', [], "must hold a non-empty JSON list of layer configs"),
    ([], [], "must hold a non-empty JSON list of layer configs"),
    ([{"type": "Conv2d"}], [], "unknown layer type 'Conv2d'"),
    ([DENSE, {"type": "Dense", "units": 1}], [], "bad arguments for layer Dense"),
    ([DENSE, {"type": "Dense", "n_out": 3}], [],
     "the last layer gives 3 outputs but the binary task needs 1 output (sigmoid)"),
    ([DENSE, {"type": "Dense", "n_out": 1}], ["--loss", "cross_entropy"],
     "the last layer gives 1 output but the binary task needs 2 outputs (softmax)"),
    ([dict(DENSE, n_in=5), {"type": "Dense", "n_out": 1}], [], "the first layer takes 5 inputs but the data has 2"),
    ([DENSE, {"type": "Dense", "n_in": 8, "n_out": 1}], [], "Dense(8, 1) receives 16 features"),
    ([DENSE, {"type": "Dense", "n_out": 1, "activation": "softmax"}], [], "applies softmax but output='sigmoid'"),
    ([DENSE, {"type": "Dense", "n_out": 1}], ["--hidden", "8"], "--arch describes the whole network: drop --hidden"),
    ([DENSE, {"type": "Dense", "n_out": 1}], ["--activation", "tanh", "--init", "he_uniform"],
     "drop --activation, --init"),
    ([DENSE, {"type": "Dense", "n_out": 1}], ["--batchnorm", "--residual", "--dropout", "0.2"],
     "drop --batchnorm, --residual, --dropout"),
]


@pytest.mark.parametrize("layers,argv,message", BAD_ARCH, ids=[m for _, _, m in BAD_ARCH])
def test_bad_arch_is_one_line_exit_2(tmp_path, capsys, layers, argv, message):
    arch, out = write_arch(tmp_path / "arch.json", layers), tmp_path / "out"
    rc = train.main(["--arch", str(arch), *argv, *ARGS, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_parity_with_arch_compares_masks_and_names_the_network(tmp_path, capsys):
    arch, out = write_arch(tmp_path / "arch.json", ARCH), tmp_path / "p"
    rc = parity.main(["--backends", "numpy,strict:device1", "--arch", str(arch), "--epochs", "1", *ARGS,
                      "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "xpnet parity: moons, Network [Dense(2, 16, 'relu'), BatchNorm1d(" in text
    row = read_json(out / "parity.json")["backends"][1]
    assert row["init_bit_identical"] and row["dropout_masks_bit_identical"] is True and row["pass"]


def test_parity_masks_have_each_dropout_layers_width():
    model = xpnet.Network([xpnet.nn.layer_from_config(c) for c in ARCH[:3] + [{"type": "Dense", "n_out": 5},
                                                                            {"type": "Dropout", "p": 0.5}]])
    model.build(2)
    masks = parity._masks(model, SimpleNamespace(batch_size=7), SimpleNamespace(sizes={"train": 100}))
    assert [m.shape for m in masks] == [(7, 16)] * len(parity.MASK_COUNTERS) + [(7, 5)] * len(parity.MASK_COUNTERS)


# --------------------------------------------------------------------------- saved models of the previous version
def test_run_folder_of_the_previous_version_loads():
    """tests/data/old_run: model.json + model.npz of the train.py before the layer redesign
    (``train.py --epochs 2 --hidden 4,3 --samples 100``): W0, W1, W2, b0, b1, b2 and an MLP config."""
    meta = read_json(OLD_RUN / "model.json")
    saved = npz(OLD_RUN / "model.npz")
    assert meta["format"] == "xpnet-run-model/1" and "W0" in saved  # the fixture is the old format
    X = np.random.default_rng(0).normal(size=(16, 2))
    h = (X - meta["standardize"]["mean"]) / np.asarray(meta["standardize"]["std"])
    for i in range(3):  # the oracle: the MLP by hand, relu then a sigmoid output
        h = h @ saved[f"W{i}"].astype(np.float64) + saved[f"b{i}"]
        h = np.maximum(h, 0.0) if i < 2 else 1.0 / (1.0 + np.exp(-h))
    for spec in ("numpy", "strict:device1"):
        run = load_run_model(OLD_RUN, spec)
        assert run.model.sizes == [2, 4, 3, 1] and run.model.backend.spec == backends.get(spec).spec
        assert run.model.counters == [6, 6] and run.task == "binary" and run.classes.tolist() == [0, 1]
        np.testing.assert_allclose(run.predict_proba(X)[:, 1], h[:, 0], rtol=1e-5)
        assert np.array_equal(run.predict(X), (h[:, 0] > 0.5).astype(int))


# --------------------------------------------------------------------------- resume
@pytest.mark.parametrize("flags", [["--hidden", "16,16", "--batchnorm", "--residual"], ["--arch"]],
                         ids=["batchnorm-residual", "arch"])
def test_resume_of_batchnorm_runs_is_bit_identical(tmp_path, capsys, flags):
    if flags == ["--arch"]:
        flags = ["--arch", str(write_arch(tmp_path / "arch.json", ARCH))]
    full, part, resumed = tmp_path / "full", tmp_path / "part", tmp_path / "resumed"
    main_ok(capsys, "--epochs", 4, *ARGS, *flags, "--out", full)
    main_ok(capsys, "--epochs", 2, *ARGS, *flags, "--out", part)
    text = main_ok(capsys, "--resume", part, "--epochs", 4, "--quiet", "--out", resumed)
    assert "trained epochs 3-4 here" in text
    assert read_json(resumed / "history.json")["per_step"] == read_json(full / "history.json")["per_step"]
    a, b = npz(full / "model.npz"), npz(resumed / "model.npz")
    assert any(k.startswith("buffers/") for k in a) and a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)  # parameters and running statistics, bit for bit
    assert read_json(resumed / "config.json")["model"]["layers"] == read_json(full / "config.json")["model"]["layers"]
    other = tmp_path / "strict"  # on another backend: to float tolerance
    main_ok(capsys, "--resume", part, "--epochs", 4, "--backend", "strict:device1", "--quiet", "--out", other)
    c = npz(other / "model.npz")
    for k in a:
        np.testing.assert_allclose(c[k], a[k], rtol=1e-4, atol=1e-5)
