"""``xpnet.MLP`` is unchanged by the composable core: numbers pinned from the previous code.

``tests/data/mlp_pinned.json`` was recorded from the code before the redesign (its recorder is
reproduced by ``_run_case``): per case the SHA-256 of the initial flat parameters (and the first
eight values as float.hex), the step losses and validation losses of a short ``xpnet.fit`` as
float.hex, the SHA-256 of the final parameters and of dropout masks. All must be bit-identical
on NumPy (the reference backend; other backends match NumPy within tolerance, see test_parity).

``tests/data/checkpoint_v1.npz`` is a format-1 checkpoint written by that code (with
``checkpoint_v1.json``: the SHA-256 of its parameters, and the step losses and final parameters
of resuming it): it must load, restore the same parameters, resume bit-identically on NumPy and
restore onto every backend.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_moons

import xpnet
from backends import Backend
from tests.helpers import assert_close, assert_equal, to_numpy

DATA = Path(__file__).resolve().parent / "data"
PINS = json.loads((DATA / "mlp_pinned.json").read_text())
CK_PIN = json.loads((DATA / "checkpoint_v1.json").read_text())


def sha(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(to_numpy(a)).tobytes()).hexdigest()


def _hex(values) -> list:
    return [None if v is None else float.hex(float(v)) for v in values]


def _datasets() -> dict:
    X, y = make_moons(300, noise=0.2, random_state=0)
    Xd, yd = load_digits(return_X_y=True)
    Xd, yd = Xd[:400] / 16.0, yd[:400]
    yr = X[:, 0] * 0.7 - X[:, 1] ** 2 + 0.05 * np.sin(np.arange(300))
    return {"moons": (X, y), "digits": (Xd, yd), "reg": (X, yr)}


def _run_case(case: dict, backend="numpy") -> tuple[xpnet.MLP, dict, xpnet.History]:
    model = xpnet.MLP(**case["mlp"], backend=backend)
    init = {"params_sha256": sha(model.params), "n_params": int(model.params.shape[0]),
            "params_head": _hex(to_numpy(model.params)[:8])}
    X, y = _datasets()[case["data"]]
    name, kw = case["fit"]["optimizer"]
    fit_kw = dict(case["fit"], optimizer=getattr(xpnet, name)(**kw))
    return model, init, xpnet.fit(model, X, y, **fit_kw)


@pytest.mark.parametrize("name", sorted(PINS))
def test_mlp_is_bit_identical_to_the_pinned_numbers(name: str) -> None:
    pin = PINS[name]
    model, init, history = _run_case(pin["case"])
    assert init == pin["init"], "initial parameters changed"
    assert model.output == pin["output"]
    assert _hex(history["step_loss"]) == pin["step_loss"], "step losses changed"
    assert _hex(history["val_loss"]) == pin["val_loss"], "validation losses changed"
    assert sha(model.params) == pin["final_params_sha256"], "final parameters changed"
    # The previous MLP had a Dropout layer only where p > 0; today's keeps a p = 0 one (the identity,
    # never drawing) so that the k-th Dropout follows hidden layer k: compare the drawing ones.
    drawing = [layer for layer in model.dropout_layers if layer.p > 0]
    masks = {str(i): sha(layer.mask((5, 7), model.dtype, 3)) for i, layer in enumerate(drawing)}
    assert masks == pin["dropout_mask_sha256"], "dropout masks changed"
    for layer in model.dropout_layers:
        if layer.p == 0:
            assert layer.counter == 0 and np.all(to_numpy(layer.mask((5, 7), model.dtype, 3)) == 1.0)


def test_pins_cover_what_they_claim() -> None:
    assert len(PINS) == 4
    outputs = {p["output"] for p in PINS.values()}
    assert outputs == {"sigmoid", "softmax", "identity"}
    assert sum(bool(p["dropout_mask_sha256"]) for p in PINS.values()) >= 2
    assert all(len(p["step_loss"]) >= 20 for p in PINS.values())


def test_mlp_layers_are_the_documented_list() -> None:
    """The builder behind the pins: Dense/Dropout alternating, k-th Dropout after hidden layer k."""
    m = xpnet.MLP([2, 16, 16, 1], activation="tanh", dropout=[0.2, 0.0], seed=3)
    kinds = [type(layer).__name__ for layer in m.layers]
    assert kinds == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert [e.name for e in m.layout.params] == ["0.W", "2.W", "4.W", "0.b", "2.b", "4.b"]
    assert m.config() == {"sizes": [2, 16, 16, 1], "activation": "tanh", "output": "sigmoid",
                          "dropout": [0.2, 0.0], "init": "glorot_normal", "seed": 3, "dtype": "float32"}


# ============================================================== the format-1 checkpoint
def _moons():
    return make_moons(200, noise=0.2, random_state=1)


def test_format1_checkpoint_loads_and_resumes_bit_identically(tmp_path) -> None:
    ck = xpnet.checkpoint.load(DATA / "checkpoint_v1.npz")
    assert ck.format_version == 1 and ck.epoch == 3
    assert ck.extra == {"scaler": {"mean": [0.5, 0.25], "std": [0.87, 0.5]}}
    model, opt = ck.restore()
    assert sha(model.params) == CK_PIN["saved_params_sha256"]
    assert isinstance(model, xpnet.MLP) and model.sizes == [2, 12, 8, 1] and type(opt).__name__ == "Adam"
    X, y = _moons()
    kw = dict(epochs=6, batch_size=32, validation_split=0.2, early_stopping=True, patience=5, l2=1e-3)
    history = xpnet.fit(model, X, y, resume=DATA / "checkpoint_v1.npz", **kw)
    assert _hex(history["step_loss"]) == CK_PIN["resumed_step_loss"]
    assert sha(model.params) == CK_PIN["resumed_final_params_sha256"]
    # resuming into a fresh MLP of that architecture is the same run
    fresh = xpnet.MLP([2, 12, 8, 1], dropout=0.1, seed=5)
    xpnet.fit(fresh, X, y, resume=DATA / "checkpoint_v1.npz", **kw)
    assert sha(fresh.params) == CK_PIN["resumed_final_params_sha256"]
    # and it saves again in the current format, with the same values
    path = xpnet.checkpoint.save(tmp_path / "v2.npz", model, opt)
    again = xpnet.checkpoint.load(path)
    assert again.format_version == xpnet.checkpoint.FORMAT_VERSION
    assert sha(again.restore()[0].params) == sha(model.params)


def test_format1_checkpoint_restores_on_every_backend(backend: Backend) -> None:
    ck = xpnet.checkpoint.load(DATA / "checkpoint_v1.npz")
    ref, _ = ck.restore()
    model, opt = ck.restore(backend=backend)
    assert model.backend.spec == backend.spec and model.dtype_name == "float32"
    assert_equal(model.params, to_numpy(ref.params), backend=backend)
    assert model.counters == ref.counters and opt.t == 15
    for k, v in opt.state.items():
        assert_equal(v, to_numpy(ref_state(ck)[k]), backend=backend)
    X = _moons()[0][:20]
    assert_close(model.forward(X), to_numpy(ref.forward(X)), backend=backend, rtol=1e-5, atol=1e-6)


def ref_state(ck) -> dict:
    return ck.restore()[1].state


# A format-1 checkpoint of an MLP with a zero dropout rate: the previous MLP had no Dropout layer
# there, so it saved one counter per nonzero rate. Made from checkpoint_v1.npz by setting its
# dropout to [0.0, 0.1] and its counters to [15]; resuming it with the code of commit d8d430e (before
# the redesign) gave these final parameters:
ZERO_RATE_RESUMED_SHA = "3f492fd06b3fde188feefe62c5aba80175f1da6591a34b734328e5b5b02f4fb2"
ZERO_RATE_LAST_LOSS = "0x1.b1dc760000000p-3"


def _zero_rate_checkpoint(path: Path) -> Path:
    with np.load(DATA / "checkpoint_v1.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.keys()}
    meta = json.loads(bytes(arrays["__meta__"]).decode("utf-8"))
    meta["model"]["dropout"], meta["dropout_counters"] = [0.0, 0.1], [15]
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)
    return path


def test_format1_checkpoint_with_a_zero_dropout_rate(tmp_path) -> None:
    path = _zero_rate_checkpoint(tmp_path / "zero_rate_v1.npz")
    ck = xpnet.checkpoint.load(path)
    model, _ = ck.restore()
    assert [layer.p for layer in model.dropout_layers] == [0.0, 0.1]
    assert model.counters == [0, 15]  # the saved counter belongs to the layer that draws
    X, y = _moons()
    fresh = xpnet.MLP([2, 12, 8, 1], dropout=[0.0, 0.1], seed=5)
    history = xpnet.fit(fresh, X, y, epochs=6, batch_size=32, validation_split=0.2, early_stopping=True,
                        patience=5, l2=1e-3, resume=path)
    assert fresh.counters == [0, 30]
    assert float.hex(history["step_loss"][-1]) == ZERO_RATE_LAST_LOSS
    assert sha(fresh.params) == ZERO_RATE_RESUMED_SHA


def test_old_form_state_dict_with_a_zero_dropout_rate() -> None:
    """``load_state_dict`` of the previous MLP's form (weights/biases lists, one counter per nonzero rate)."""
    src = xpnet.MLP([3, 5, 4, 2], dropout=[0.2, 0.0], seed=1)
    state = {"config": src.config(), "weights": [to_numpy(w) for w in src.weights],
             "biases": [to_numpy(b) + 1.0 for b in src.biases], "dropout_counters": [7]}
    dst = xpnet.MLP([3, 5, 4, 2], dropout=[0.2, 0.0], seed=2)
    dst.load_state_dict(state)
    assert dst.counters == [7, 0]
    for a, b in zip(dst.weights + dst.biases, state["weights"] + state["biases"]):
        np.testing.assert_array_equal(to_numpy(a), b)
    with pytest.raises(ValueError, match="dropout counters"):
        dst.load_state_dict(dict(state, dropout_counters=[7, 0, 1]))
