"""The visualizer's data: every number the page shows, computed by xpnet's own layers.

The page steps through one forward and backward pass on one example (a batch of one) and replays
a training trajectory. Nothing here does arithmetic on the network's values: each Dense layer and
each activation runs its own ``forward(x, training) -> (y, cache)`` and ``backward(dy, cache) -> dx``
(the code :func:`xpnet.fit` trains with), the loss and ``d loss / d z`` come from
:class:`xpnet.nn.Objective`, the update from :class:`xpnet.SGD`, the losses along the trajectory
from :func:`xpnet.evaluate`. To show z as well as the activation, the network is drawn in its
*layered* form (:func:`layered`): every ``Dense(n_in, n_out, act)`` becomes ``Dense(n_in, n_out)``
followed by the activation layer, the same parameters and the same numbers.

Convention (xpnet's): x is a row vector, W is (fan_in, fan_out), so z = x·W + b, dW = xᵀ·δ,
db = δ and the gradient sent back is dx = δ·Wᵀ (the tutorials' column-vector z = Wx + b,
dW = δxᵀ use the transpose of this W).
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable

import numpy as np

import xpnet
from xpnet.nn import Activation, Dense, Dropout, Network, Sequential, layer_from_config, make_activation, walk

from .args import CLIError
from .data import XOR_X, XOR_Y, plain
from .rundata import read_json, require_folder, run_data
from .runmodel import load_run_model

MAX_UNITS = 8  # widest layer the diagram draws
_RELU_LIKE = ("relu", "leaky_relu", "gelu")
_CHECKPOINT = re.compile(r"checkpoint-(\d+)\.npz\Z")


# ---------------------------------------------------------------- the network
def check_drawable(model: Network, what: str = "the model") -> None:
    """CLIError unless ``model`` is a chain of Dense layers (activations and Dropout between them)
    of at most :data:`MAX_UNITS` units per layer."""
    for path, layer in walk(model.root):
        if isinstance(layer, Sequential) or not path:
            continue
        if not isinstance(layer, (Dense, Activation, Dropout)):
            raise CLIError(f"{what} has a {type(layer).__name__} layer ({path}): the visualizer draws chains of "
                           f"Dense layers and activations only")
        if isinstance(layer, Dense) and max(layer.n_in, layer.n_out) > MAX_UNITS:
            raise CLIError(f"{what} is too large to draw: Dense {layer.n_in}->{layer.n_out} (layer {path}) has "
                           f"more than {MAX_UNITS} units; the visualizer draws at most {MAX_UNITS} units per layer "
                           f"(train a small one, e.g. scripts/train.py --hidden 8,8)")


def layered(model: Network) -> Network:
    """``model`` with every activation as a layer of its own (Dense without activation, then the
    activation), Dropout left out (the step-through runs in eval mode), the same parameters."""
    check_drawable(model)
    layers: list = []
    for _, layer in walk(model.root):
        if isinstance(layer, Dense):
            layers.append(Dense(layer.n_in, layer.n_out, init=layer.init))
            if layer.act is not None and not layer.head:
                layers.append(layer_from_config(layer.act.config()))
        elif isinstance(layer, Activation):
            layers.append(layer_from_config(layer.config()))
    net = Network(layers, output=model.output, seed=model.seed, backend="numpy", dtype=model.dtype_name)
    to_np = model.backend.to_numpy
    net.load_state_dict({"weights": [to_np(w) for w in model.weights], "biases": [to_np(b) for b in model.biases]})
    return net


def stages(net: Network) -> list[tuple[Dense, Activation | None]]:
    """(Dense, the activation after it or None) for each Dense of a :func:`layered` network."""
    out: list = []
    for layer in net.layers:
        if isinstance(layer, Dense):
            out.append([layer, None])
        elif isinstance(layer, Activation):
            if not out or out[-1][1] is not None:
                raise CLIError("the visualizer needs one activation after each Dense layer at most")
            out[-1][1] = layer
    return [tuple(s) for s in out]


def tutorial_network(hidden: int = 2, activation: str = "sigmoid", seed: int = 0,
                     dtype: str = "float64") -> Network:
    """The tutorials' 2 -> hidden -> 1 network in layered form (the same initial weights as
    ``xpnet.MLP([2, hidden, 1], activation, seed=seed)``), with a sigmoid output."""
    init = "he_normal" if activation in _RELU_LIKE else "glorot_normal"
    return Network([Dense(2, hidden, init=init), make_activation(activation), Dense(hidden, 1, init=init)],
                   output="sigmoid", seed=seed, dtype=dtype)


# ---------------------------------------------------------------- one pass, step by step
def _host(net: Network) -> Callable[[Any], Any]:
    """Device array -> nested lists of Python floats (float32 values by their shortest repr)."""
    def to_list(a: Any) -> Any:
        arr = np.asarray(net.backend.to_numpy(a))
        if arr.dtype == np.float32:
            return np.vectorize(lambda v: float(str(v)), otypes=[float])(arr).tolist() if arr.size else arr.tolist()
        return arr.astype(np.float64).tolist()
    return to_list


def trace(net: Network, objective: xpnet.nn.Objective, x: np.ndarray, y: Any, lr: float) -> dict:
    """Everything of one training step on the single example (x, y): per layer its input x, z, the
    activation a (the output head's p for the last layer), ∂L/∂a, the activation's local derivative,
    δ = ∂L/∂z, dW, db, the gradient sent back dx (None for the first layer), and W, b after one SGD
    step of rate ``lr``; the loss and the prediction. ``net.params`` is left as it was."""
    host, xp = _host(net), net.xp
    X, Y = net.as_input(np.asarray(x, dtype=np.float64)[None, :]), net.targets(np.asarray([y]))
    chain = stages(net)
    layers, caches, h = [], [], X
    for dense, act in chain:
        z, dense_cache = dense.forward(h, False)
        a, act_cache = act.forward(z, False) if act is not None else (z, None)
        layers.append({"x": h, "z": z, "a": a})
        caches.append((dense_cache, act_cache))
        h = a
    z_out = layers[-1]["z"]
    layers[-1]["a"] = net.output_layer.forward(z_out)[0]
    loss, dz = objective(z_out, Y)
    grad = dz
    for i in reversed(range(len(chain))):
        dense, act = chain[i]
        dense_cache, act_cache = caches[i]
        rec = layers[i]
        if i == len(chain) - 1:  # the objective's gradient with respect to the logits
            rec["da"], rec["dact"], delta = None, None, dz
        elif act is not None:
            rec["da"], rec["dact"] = grad, act.backward(xp.ones_like(rec["z"]), act_cache)
            delta = act.backward(grad, act_cache)
        else:
            rec["da"], rec["dact"], delta = grad, xp.ones_like(rec["z"]), grad
        grad = dense.backward(delta, dense_cache)  # writes dense.grad_W, dense.grad_b
        rec.update(delta=delta, dW=dense.grad_W * 1.0, db=dense.grad_b * 1.0, dx=grad)
    saved = net.copy_params()
    xpnet.SGD(lr=lr).step(net.params, net.grads)
    for (dense, _), rec in zip(chain, layers):
        rec.update(W_new=dense.W * 1.0, b_new=dense.b * 1.0)
    net.set_params(saved)
    out = []
    for rec in layers:
        row = {}
        for k, v in rec.items():
            if v is None:
                row[k] = None
            elif k in ("dW", "W_new"):
                row[k] = host(v)
            else:
                row[k] = host(v)[0] if k != "db" and k != "b_new" else host(v)
        out.append(row)
    return {"layers": out, "loss": host(loss), "target": host(Y)[0]}


def steps(n_layers: int) -> list[dict]:
    """The step list: input, forward (linear, activation) per layer, loss, backward (δ, dW and db,
    dx except for the first layer) from the last layer down, update."""
    out = [{"phase": "input", "layer": None, "kind": "input"}]
    for i in range(n_layers):
        out += [{"phase": "forward", "layer": i, "kind": "linear"}, {"phase": "forward", "layer": i, "kind": "activation"}]
    out.append({"phase": "loss", "layer": n_layers - 1, "kind": "loss"})
    for i in reversed(range(n_layers)):
        out += [{"phase": "backward", "layer": i, "kind": "delta"}, {"phase": "backward", "layer": i, "kind": "grads"}]
        if i > 0:
            out.append({"phase": "backward", "layer": i, "kind": "dx"})
    out.append({"phase": "update", "layer": None, "kind": "update"})
    return out


# ---------------------------------------------------------------- the whole page's data
def payload(net: Network, loss: str | None, lr: float, samples: list[dict], frames: list[tuple[int, np.ndarray]],
            X_eval: np.ndarray, y_eval: np.ndarray, curve: dict, meta: dict) -> dict:
    """The page's JSON: the layers, the step list, the examples, and per frame (epoch, flat
    parameters) the weights, xpnet's loss on (X_eval, y_eval) and one step-through trace per example."""
    objective = xpnet.nn.Objective(net, loss)
    chain = stages(net)
    host = _host(net)
    saved = net.copy_params()
    out_frames = []
    for epoch, flat in frames:
        net.set_params(net.backend.asarray(np.asarray(flat), dtype=net.dtype))
        value, acc = xpnet.evaluate(net, X_eval, y_eval, loss=loss)
        out_frames.append({
            "epoch": int(epoch), "loss": float(value), "accuracy": None if acc is None else float(acc),
            "W": [host(d.W) for d, _ in chain], "b": [host(d.b) for d, _ in chain],
            "traces": [trace(net, objective, s["x"], s["y"], lr) for s in samples]})
    net.set_params(saved)
    layers = [{"n_in": d.n_in, "n_out": d.n_out,
               "activation": net.output if i == len(chain) - 1 else (a.name if a is not None else "identity"),
               "head": i == len(chain) - 1} for i, (d, a) in enumerate(chain)]
    return {"format": "xpnet-visualizer/1", "meta": meta, "sizes": [chain[0][0].n_in] + [d.n_out for d, _ in chain],
            "layers": layers, "loss": objective.loss.name, "output": net.output, "lr": lr,
            "steps": steps(len(chain)), "samples": [{k: v for k, v in s.items() if k != "y"} for s in samples],
            "frames": out_frames, "curve": curve}


def tutorial_payload(hidden: int = 2, activation: str = "sigmoid", seed: int = 0, lr: float = 1.0,
                     epochs: int = 3000, n_frames: int = 101) -> dict:
    """XOR on the tutorials' 2-2-1 sigmoid network: full-batch SGD, ``n_frames`` snapshots over the epochs."""
    net = tutorial_network(hidden, activation, seed)
    wanted = {int(e) for e in np.linspace(0, epochs, max(2, n_frames)).round()}
    snaps = {0: net.backend.to_numpy(net.params).copy()}

    def grab(epoch: int, logs: dict) -> None:
        if epoch in wanted:
            snaps[epoch] = net.backend.to_numpy(net.params).copy()

    history = xpnet.fit(net, XOR_X, XOR_Y, optimizer=xpnet.SGD(lr=lr), loss="bce", epochs=epochs, batch_size=4,
                        callbacks=[grab])
    final = xpnet.evaluate(net, XOR_X, XOR_Y, loss="bce")[0]
    curve = {"epoch": list(range(epochs + 1)), "loss": [float(v) for v in history["loss"]] + [float(final)],
             "label": "training loss (full batch, before each epoch's update)"}
    samples = [{"x": x.tolist(), "y": int(t), "label": f"x = ({x[0]:g}, {x[1]:g}), y = {t}"} for x, t in zip(XOR_X, XOR_Y)]
    meta = {"title": f"XOR on a 2-{hidden}-1 {activation} network",
            "source": "xpnet tutorial network (scripts/visualize.py)",
            "inputs": ["x1", "x2"], "outputs": ["p(y = 1)"],
            "training": f"full-batch SGD, lr {lr:g}, {epochs} epochs, BCE loss, seed {seed}, float64",
            "frames_note": f"{len(snaps)} snapshots of the weights over {epochs} epochs",
            "step_note": "one SGD step on the selected example (a batch of one), at the weights of the selected epoch"}
    frames = sorted(snaps.items())
    return payload(net, "bce", lr, samples, frames, XOR_X, XOR_Y, curve, meta)


def run_payload(run_dir: str, n_samples: int = 4) -> dict:
    """A train.py run's model (final weights, plus any checkpoint-NNNN.npz as earlier frames), stepped
    through on the first ``n_samples`` test examples; the curve is history.json's training loss."""
    require_folder(run_dir, "--run")
    if not os.path.isfile(os.path.join(run_dir, "model.json")):
        raise CLIError(f"--run {run_dir}: holds no model.json (a train.py run folder has one)")
    run = load_run_model(run_dir)
    check_drawable(run.model, f"--run {run_dir}: the model")
    net = layered(run.model)
    config = read_json(os.path.join(run_dir, "config.json")) or {}
    history = read_json(os.path.join(run_dir, "history.json")) or {}
    prep = run_data(run_dir, run, config)
    if prep is None:
        raise CLIError(f"--run {run_dir}: cannot reload the run's data (config.json, split.npz or the dataset file "
                       f"is missing); the visualizer needs its examples")
    settings = config.get("settings", {})
    loss, lr = settings.get("loss"), float(settings.get("lr") or 0.01)
    names = prep.data.feature_names
    split = prep.eval_split  # the training rows of a run without a test split
    picks, seen = [], set()  # the first test row of each target value first, then the next rows
    for i, t in enumerate(prep.y[split].tolist()):
        if t not in seen and len(picks) < n_samples:
            picks.append(i)
            seen.add(t)
    picks += [i for i in range(len(prep.y[split])) if i not in picks][:n_samples - len(picks)]
    samples = []
    for row, xs, ys in zip(prep.idx[split][picks], prep.X[split][picks], prep.y[split][picks]):
        target = plain(prep.data.y[row])
        samples.append({"x": xs.tolist(), "y": ys.item(), "label": f"{split} row {int(row)}: y = {target}",
                        "raw": [float(v) for v in prep.data.X[row]]})
    frames = []
    for name in sorted(os.listdir(run_dir)):
        if _CHECKPOINT.match(name):
            try:
                model, _ = xpnet.checkpoint.load(os.path.join(run_dir, name)).restore(backend="numpy")
                frames.append((int(_CHECKPOINT.match(name).group(1)), np.asarray(layered(model).params).copy()))
            except ValueError:
                continue  # unreadable: the frame is left out
    pe = history.get("per_epoch") or {}
    last = history.get("best_epoch") if history.get("stopped_early") else history.get("epochs_run")
    final_epoch = int(last or (pe.get("epoch") or [0])[-1])
    frames = [f for f in frames if f[0] != final_epoch] + [(final_epoch, np.asarray(net.params).copy())]
    curve = {"epoch": pe.get("epoch", []), "loss": pe.get("train_loss", []),
             "label": "training loss (history.json)"}
    classes = None if run.classes is None else [str(plain(c)) for c in run.classes]
    outputs = ([f"p({classes[1]})"] if net.output == "sigmoid" and classes else
               [f"p({c})" for c in classes] if classes else ["ŷ"])
    meta = {"title": f"{settings.get('dataset', 'run')}: {xpnet.checkpoint.describe_model(run.model.config())}",
            "source": os.path.abspath(run_dir), "inputs": [str(n) for n in names], "outputs": outputs,
            "training": f"{settings.get('optimizer', '?')} lr {lr:g}, {settings.get('epochs', '?')} epochs, "
                        f"batch {settings.get('batch_size', '?')} (the run's settings)",
            "frames_note": f"{len(frames)} frame(s): " + ("the checkpoints and the final weights" if len(frames) > 1
                                                            else "a run folder keeps its final weights only"),
            "step_note": "one plain SGD step (lr of the run) on the selected test example, standardized as in "
                         "training; eval mode (dropout off), no L2; frame losses on the training split"}
    return payload(net, loss, lr, samples, sorted(frames, key=lambda f: f[0]), prep.X["train"], prep.y["train"],
                   curve, meta)
