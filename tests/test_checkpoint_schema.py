"""The checkpoint schema (xpnet/io/schema.py): each rule of docs/bad_inputs.md's checkpoint table, one
crafted file each. Every refusal is one CheckpointError line naming the file and the field, raised
before the arrays it concerns are read."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import xpnet
import xpnet.checkpoint as ckpt
from tests.helpers import assert_equal, to_numpy


def _data(n=40):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)


@pytest.fixture
def good(tmp_path) -> Path:
    X, y = _data()
    model, opt = xpnet.MLP([4, 16, 3], dropout=0.2, seed=3), xpnet.Adam(lr=0.01)
    xpnet.fit(model, X, y, optimizer=opt, epochs=2, batch_size=16, checkpoint=tmp_path / "good.npz")
    return tmp_path / "good.npz"


def _parts(path: Path) -> tuple[dict, dict[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        raw = {i.filename[:-4]: zf.read(i) for i in zf.infolist()}
    return json.loads(np.load(io.BytesIO(raw["__meta__"])).tobytes()), raw


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _header(dtype, shape) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                              "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _write(path: Path, meta: dict | str, raw: dict[str, bytes]) -> Path:
    text = meta if isinstance(meta, str) else json.dumps(meta)
    raw = dict(raw, __meta__=_npy(np.frombuffer(text.encode(), np.uint8)))
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in raw.items():
            zf.writestr(name + ".npy", data)
    return path


def _refused(path: Path, fragment: str, restore: bool = False) -> str:
    with pytest.raises(ckpt.CheckpointError) as info:
        ck = ckpt.load(path)
        if restore:
            ck.restore()
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg and len(msg) < 500, msg
    assert fragment in msg, msg
    return msg


def _set(meta: dict, dotted: str, value) -> dict:
    *parents, last = dotted.split(".")
    target = meta
    for k in parents:
        target = target[int(k)] if isinstance(target, list) else target[k]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return meta


# (field, bad value, fragment of the message): a string where a number belongs, negative or huge counters,
# wrong types, values that do not fit the rest of the file.
FIELDS = [
    ("epoch", "5", "field 'epoch' must be an integer in [0, 4611686018427387904], got '5'"),
    ("epoch", -1, "field 'epoch' must be an integer"),
    ("epoch", 2**80, "field 'epoch' must be an integer"),
    ("step", 1.5, "field 'step' must be an integer"),
    ("step", 7, "field 'step' must equal the optimizer's step count 6"),
    ("format_version", True, "field 'format_version' must be an integer in [1, 3]"),
    ("format_version", 0, "field 'format_version' must be an integer in [1, 3]"),
    ("dropout_counters", [1, 2, 3], "field 'dropout_counters' must hold one counter per Dropout layer (1)"),
    ("dropout_counters.0", -4, "field 'dropout_counters[0]' must be an integer"),
    ("optimizer.t", None, "field 'optimizer.t' must be an integer"),
    ("optimizer.state", ["m"], "field 'optimizer.state' must be ['m', 'v'] for Adam after 6 steps"),
    ("optimizer.config.beta1", 1.0, "field 'optimizer.config' does not build a Adam (beta1 must be"),
    ("optimizer.config.lr", float("nan"), "field 'optimizer.config.lr' must be a finite number >= 0"),
    ("optimizer.config.name", ["Adam"], "field 'optimizer.config.name' must be a string"),
    ("model.sizes", [4, "16", 3], "field 'model' does not describe a network xpnet can build (sizes must be"),
    ("model.sizes", [4, 16, 3, 0], "field 'model' does not describe a network"),
    ("model.dtype", "float16", "field 'model.dtype' must be one of ['float32', 'float64']"),
    ("model.output", "tanh", "field 'model.output' must be one of"),
    ("model.seed", -1, "field 'model.seed' must be an integer"),
    ("model", [], "field 'model' must be a JSON object"),
    ("layout.0.shape", [4, 17], "field 'layout' does not match its model config at entry 0"),
    ("layout.1.offset", False, "field 'layout' does not match its model config"),
    ("streams", {"0": 7}, "field 'streams' does not match its model config"),
    ("arrays", ["params", "params", "optimizer.m", "optimizer.v"], "field 'arrays' must list distinct member names"),
    ("history.loss", 0.5, "field 'history.loss' must be a list"),
    ("history.epoch", [0, 5], "field 'history.epoch' must count the epochs recorded"),
    ("history.lr", [0.01], "field 'history.lr' must hold one entry per epoch recorded (2)"),
    ("history.best_epoch", 9, "field 'history.best_epoch' must be an integer in [1, 2]"),
    ("history.stopped_early", "no", "field 'history.stopped_early' must be true or false"),
    ("step_in_epoch", 2, "field 'partial' must be set exactly when step_in_epoch > 0"),
    ("early_stopping.best", float("inf"), "field 'early_stopping.best' must be a finite number"),
    ("early_stopping.waited", 3, "field 'early_stopping.waited' must be an integer in [0, 2]"),
    ("fit.batch_size", 0, "field 'fit.batch_size' must be an integer in [1,"),
    ("fit.validation_split", 1.0, "field 'fit.validation_split' must be a finite number in [0, 1)"),
    ("fit.shuffle", "yes", "field 'fit.shuffle' must be true or false"),
    ("loss_scaler", {"scale": -1, "clean": 0, "skipped": 0}, "field 'loss_scaler.scale' must be a finite number > 0"),
    ("xpnet_version", {"v": 1}, "field 'xpnet_version' must be a string"),
]


@pytest.mark.parametrize("field,value,fragment", FIELDS, ids=[f"{f}={str(v)[:20]}" for f, v, _ in FIELDS])
def test_metadata_fields_are_checked(good, field, value, fragment):
    meta, raw = _parts(good)
    _refused(_write(good, _set(meta, field, value), raw), fragment)


def test_json_and_layer_configs_nest_boundedly(good):
    meta, raw = _parts(good)
    deep = "[" * 5000 + "]" * 5000  # beyond the JSON parser's own recursion limit
    _refused(_write(good, json.dumps(meta).replace('"saved_at": "', '"saved_at": ' + deep + ', "x": "'), raw),
             "nests deeper than 64 levels")
    _refused(_write(good, json.dumps(meta).replace('"saved_at": "', '"saved_at": ' + "[" * 70 + "]" * 70 +
                                                   ', "x": "'), raw), "field 'saved_at' nests deeper than 64 levels")
    layer: dict = {"type": "Dense", "n_out": 3}
    for _ in range(40):  # 40 Residual levels: a valid network, but no checkpoint xpnet writes nests so
        layer = {"type": "Residual", "body": layer}
    meta["model"] = {"layers": [{"type": "Dense", "n_in": 4, "n_out": 3}, layer], "output": "softmax", "seed": 3,
                     "dtype": "float32", "n_inputs": 4}
    _refused(_write(good, meta, raw), "field 'model' nests layers more than 32 deep")


def test_absurd_sizes_are_refused_before_anything_is_allocated(good):
    meta, raw = _parts(good)
    meta["model"]["sizes"] = [4, 10**9, 3]  # 8e9 parameters, with a layout that agrees
    meta["layout"] = xpnet.nn.configs.config_layout(meta["model"])[1].describe()
    msg = _refused(_write(good, meta, raw), "needs about")
    assert "8,000,000,003 parameters" in msg and "more than the" in msg
    meta["model"]["sizes"] = [4, 2**62, 3]
    _refused(_write(good, meta, raw), "field 'layout' does not match")


def test_member_headers_are_checked_before_their_data(good):
    meta, raw = _parts(good)
    n = meta["layout"][-1]["offset"] + 3
    cases = {
        "float64 of shape": _npy(np.zeros(n, np.float64)),  # a dtype other than the model's
        "float32 of shape (1, ": _npy(np.zeros((1, n), np.float32)),  # another shape
        "its header declares": _header(np.float32, (n + 1,)) + np.zeros(n, np.float32).tobytes(),
    }
    for fragment, data in cases.items():
        _refused(_write(good, meta, dict(raw, params=data)), fragment)
    swapped = _npy(np.load(io.BytesIO(raw["params"])).astype(">f4"))  # the same values, big-endian: fine
    ck = ckpt.load(_write(good, meta, dict(raw, params=swapped)))
    assert_equal(ck.arrays["params"], np.load(io.BytesIO(raw["params"])))


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_members_must_be_exactly_the_listed_ones(good):
    meta, raw = _parts(good)
    _refused(_write(good, meta, dict(raw, extra_stuff=_npy(np.ones(2)))), "holds members ['extra_stuff']")
    meta["arrays"].append("best_params")
    _refused(_write(good, meta, raw), "is corrupted: arrays ['best_params'] are missing")
    meta["arrays"] = ["params", "optimizer.m", "optimizer.v", "junk"]
    _refused(_write(good, meta, dict(raw, junk=_npy(np.ones(2)))), "field 'arrays' names ['junk']")
    meta, raw = _parts(good)
    with zipfile.ZipFile(good, "a") as zf:  # a second member of the same name
        zf.writestr("params.npy", raw["params"])
    _refused(good, "member 'params' appears twice")


def test_non_finite_arrays_are_refused(good):
    meta, raw = _parts(good)
    params = np.load(io.BytesIO(raw["params"]))
    params[70] = np.nan
    _refused(_write(good, meta, dict(raw, params=_npy(params))), "member 'params' holds nan at index 70 (in 2.W)")


def test_history_must_match_the_epochs_on_resume(good):
    meta, raw = _parts(good)
    meta["epoch"] = 1  # the history records 2
    meta["early_stopping"]["waited"] = 0
    ck = ckpt.load(_write(good, meta, raw))
    X, y = _data()
    with pytest.raises(ckpt.CheckpointError, match="its history records 2 epochs but 1 were completed"):
        xpnet.fit(xpnet.MLP([4, 16, 3], dropout=0.2, seed=3), X, y, epochs=3, batch_size=16, resume=ck)


def test_format_1_members_are_checked(tmp_path):
    src = Path(__file__).parent / "data" / "checkpoint_v1.npz"
    meta, raw = _parts(src)
    _refused(_write(tmp_path / "v1.npz", meta, dict(raw, **{"model.W1": _npy(np.zeros((12, 9), np.float32))})),
             "member 'model.W1' is float32 of shape (12, 9), its __meta__ declares float32 of shape (12, 8)")
    meta["model"]["batchnorm"] = True
    _refused(_write(tmp_path / "v1.npz", meta, raw),
             "field 'model' must be a plain MLP's config in checkpoint format 1")


def test_a_valid_file_restores_the_same_state(good):
    ck = ckpt.load(good)
    model, opt = ck.restore()
    assert_equal(to_numpy(model.params), ck.arrays["params"])
    assert sorted(opt.state) == ["m", "v"] and opt.t == ck.step == 6
