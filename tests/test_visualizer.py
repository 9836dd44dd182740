"""scripts/visualize.py in a real browser: Debian's Chromium driven by Playwright.

The page is opened from a file URL with every non-file request blocked and recorded; each step of
the forward and backward pass is clicked through and every number the page shows is compared, at
its printed precision, with what xpnet computes for the same network and example (an
``xpnet.MLP`` trained independently here, its own forward, ``loss_and_grads`` and NumPy for the
intermediate products). The browser tests skip only outside CI when Chromium or Playwright is
missing; with CI set they fail instead. Screenshots go to $XPNET_ARTIFACTS (default: pytest's tmp
dir); XPNET_UPDATE_DOCS=1 also writes docs/visualizer.png for the README.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0, 1, 1, 0])


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"xpnet_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI is set: the browser tests must run; .ci/run installs Chromium)")
    pytest.skip(reason)


# ---------------------------------------------------------------- the browser
_SHARED: dict = {"users": 0}  # one Chromium for every module that uses these fixtures (Playwright's sync API
#                               allows one running instance per thread)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A persistent headless Chromium context (Debian's binary), shared by the whole session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed: pip install -e '.[test]'")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium")
    if "ctx" not in _SHARED:
        pw = sync_playwright().start()
        try:
            _SHARED["ctx"] = pw.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, args=FLAGS, headless=True,
                viewport={"width": 1400, "height": 1000})
        except Exception as exc:  # noqa: BLE001
            pw.stop()
            _unavailable(f"Chromium did not start: {' '.join(str(exc).split())[:300]}")
        _SHARED["pw"] = pw
    _SHARED["users"] += 1
    yield _SHARED["ctx"]
    _SHARED["users"] -= 1
    if _SHARED["users"] == 0:
        _SHARED.pop("ctx").close()
        _SHARED.pop("pw").stop()


@pytest.fixture
def page(browser):
    """A fresh tab; ``page.problems`` collects console errors, page errors and any non-file request."""
    p = browser.new_page()
    problems: list[str] = []
    p.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    p.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
            return r.continue_()
        problems.append(f"network request: {r.request.url}")
        return r.abort()

    p.route("**/*", route)
    p.problems = problems
    yield p
    p.close()


def artifact(name: str, tmp_path_factory) -> Path:
    """Where a screenshot goes: $XPNET_ARTIFACTS or a pytest tmp dir."""
    folder = Path(os.environ.get("XPNET_ARTIFACTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def save_screenshot(page, name: str, tmp_path_factory) -> Path:
    path = artifact(name, tmp_path_factory)
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("XPNET_UPDATE_DOCS") == "1":
        shutil.copyfile(path, ROOT / "docs" / name)
    return path


# ---------------------------------------------------------------- comparing printed numbers
def close_at_print(text: str, value: float) -> bool:
    """Whether ``text`` (4 decimals, or a 4-digit mantissa with an exponent) is ``value`` rounded."""
    text = text.strip().replace("−", "-")
    if "e" in text:
        mantissa, exp = text.split("e")
        tol = 0.5 * 10.0 ** (int(exp) - (len(mantissa.split(".")[1]) if "." in mantissa else 0))
    else:
        tol = 0.5 * 10.0 ** -(len(text.split(".")[1]) if "." in text else 0)
    return abs(float(text) - value) <= tol * (1 + 1e-9) + 1e-15


def assert_shown(shown, expected, what: str) -> None:
    exp = np.asarray(expected, dtype=np.float64)
    got = np.asarray(shown, dtype=object)
    assert got.shape == exp.shape, f"{what}: shows shape {got.shape}, xpnet's is {exp.shape}"
    for t, v in zip(got.ravel(), exp.ravel()):
        assert close_at_print(t, float(v)), f"{what}: the page shows {t}, xpnet computes {v!r}"


def last_number(line: str) -> str:
    return re.findall(r"-?\d+\.\d+(?:e[+-]?\d+)?", line)[-1]


# ---------------------------------------------------------------- what xpnet computes
def reference_mlp(epochs: int) -> xpnet.MLP:
    """The tutorial network as a plain MLP, trained here on its own for ``epochs`` full-batch epochs."""
    model = xpnet.MLP([2, 2, 1], activation="sigmoid", seed=0, dtype="float64")
    if epochs:
        xpnet.fit(model, XOR_X, XOR_Y, optimizer=xpnet.SGD(lr=1.0), epochs=epochs, batch_size=4)
    return model


def expected_values(model: xpnet.MLP, x: np.ndarray, y: int, lr: float = 1.0) -> dict:
    """Every quantity of one training step on (x, y), by xpnet's MLP (NumPy for the products in between)."""
    W1, W2 = (np.array(w) for w in model.weights)
    b1, b2 = (np.array(b) for b in model.biases)
    X = x[None, :]
    a1 = np.array(model.layers[0].forward(model.as_input(X))[0])[0]
    z2 = np.array(model.logits(X))[0]
    p = np.array(model.forward(X))[0]
    loss, dWs, dbs = model.loss_and_grads(X, np.array([y]))
    dW1, dW2, db1, db2 = (np.array(a) for a in (*dWs, *dbs))
    return {"x": x, "y": [y], "W": [W1, W2], "b": [b1, b2], "z": [x @ W1 + b1, z2], "a": [a1, p], "L": [float(loss)],
            "delta": [db1, db2], "dW": [dW1, dW2], "db": [db1, db2], "da": db2 @ W2.T, "dact": a1 * (1 - a1),
            "Wnew": [W1 - lr * dW1, W2 - lr * dW2], "bnew": [b1 - lr * db1, b2 - lr * db2]}


def check_step(state: dict, e: dict) -> None:
    """The values and the equation of one step against xpnet's."""
    kind, l, vals, eq = state["kind"], state["layer"], state["values"], state["equation"]
    where = f"step {state['step'] + 1} ({kind}, layer {l})"
    expect: dict = {}
    results: list = []
    if kind == "input":
        expect = {"x": e["x"], "y": e["y"]}
    elif kind == "linear":
        expect = {"x": e["x"] if l == 0 else e["a"][0], "W": e["W"][l], "b": e["b"][l], "z": e["z"][l]}
        results = list(e["z"][l])
    elif kind == "activation":
        expect = {"z": e["z"][l], ("a" if l == 0 else "p"): e["a"][l]}
        results = list(e["a"][l])
    elif kind == "loss":
        expect, results = {"p": e["a"][1], "y": e["y"], "L": e["L"]}, e["L"]
    elif kind == "delta":
        expect = {"p": e["a"][1], "y": e["y"], "delta": e["delta"][1]} if l == 1 else \
            {"da": e["da"], "a": e["a"][0], "dact": e["dact"], "delta": e["delta"][0]}
        results = list(e["delta"][l])
    elif kind == "grads":
        expect = {"x": e["x"] if l == 0 else e["a"][0], "delta": e["delta"][l], "dW": e["dW"][l], "db": e["db"][l]}
        results = list(np.ravel(e["dW"][l])) + list(e["db"][l])
    elif kind == "dx":
        expect, results = {"delta": e["delta"][l], "W": e["W"][l], "dx": e["da"]}, list(e["da"])
    elif kind == "update":
        for k in (0, 1):
            expect |= {f"W_{k}": e["W"][k], f"dW_{k}": e["dW"][k], f"Wnew_{k}": e["Wnew"][k], f"b_{k}": e["b"][k],
                       f"db_{k}": e["db"][k], f"bnew_{k}": e["bnew"][k]}
        results = [v for k in (0, 1) for v in list(np.ravel(e["Wnew"][k])) + list(e["bnew"][k])]
    assert sorted(vals) == sorted(expect), f"{where}: shows {sorted(vals)}, expected {sorted(expect)}"
    for name, value in expect.items():
        assert_shown(vals[name], value, f"{where} {name}")
    lines = [ln for ln in eq[1:]] if kind != "input" else []
    if results:
        assert len(lines) == len(results), f"{where}: {len(lines)} equation lines for {len(results)} results"
        for line, v in zip(lines, results):
            assert close_at_print(last_number(line), float(v)), f"{where}: equation {line!r}, xpnet {v!r}"


# ---------------------------------------------------------------- the page
@pytest.fixture(scope="module")
def xor_page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("viz") / "visualizer.html"
    assert load_script("visualize").main(["--out", str(out)]) == 0
    return out


def test_page_is_self_contained(xor_page):
    page = xor_page.read_text(encoding="utf-8")
    assert "<script src" not in page and "<link" not in page and "http://" not in page.replace(
        "http://www.w3.org/2000/svg", "") and "https://" not in page
    assert 'data-testid="next"' in page and "window.xpnetViz" in page


def test_every_step_shows_what_xpnet_computes(browser, page, xor_page, tmp_path_factory):
    page.goto(xor_page.as_uri())
    state = page.evaluate("window.xpnetViz.state()")
    data = page.evaluate("window.xpnetViz.data")
    assert state["step"] == 0 and state["kind"] == "input" and state["nSteps"] == 12 and state["frame"] == 0
    last = len(data["frames"]) - 1
    assert data["frames"][last]["epoch"] == 3000 and data["sizes"] == [2, 2, 1]
    seen = []
    for frame, sample in ((0, 1), (last, 3)):  # the initial weights, and the learned ones
        epoch = data["frames"][frame]["epoch"]
        page.evaluate(f"window.xpnetViz.setFrame({frame})")
        page.click(f"[data-testid=sample-{sample}]")
        page.click("[data-testid=reset]")
        e = expected_values(reference_mlp(epoch), XOR_X[sample], int(XOR_Y[sample]))
        for s in range(12):
            state = page.evaluate("window.xpnetViz.state()")
            assert state["step"] == s and state["sample"] == sample and state["epoch"] == epoch
            check_step(state, e)
            seen.append((state["phase"], state["kind"], state["layer"]))
            if state["kind"] == "loss":  # the diagram's output unit shows p (green) by now
                assert any(close_at_print(t.split("=")[1], e["a"][1][0]) for t in state["units"][2][0] if t.startswith("p"))
            if s < 11:
                page.click("[data-testid=next]")
        page.click("[data-testid=next]")  # at the end: stays
        assert page.evaluate("window.xpnetViz.state().step") == 11
    assert seen[:12] == [("input", "input", None), ("forward", "linear", 0), ("forward", "activation", 0),
                         ("forward", "linear", 1), ("forward", "activation", 1), ("loss", "loss", 1),
                         ("backward", "delta", 1), ("backward", "grads", 1), ("backward", "dx", 1),
                         ("backward", "delta", 0), ("backward", "grads", 0), ("update", "update", None)]
    # the keyboard: back, reset, play
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("window.xpnetViz.state().step") == 10
    page.keyboard.press("r")
    assert page.evaluate("window.xpnetViz.state().step") == 0
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("window.xpnetViz.state().step") == 2
    page.click("[data-testid=prev]")
    assert page.evaluate("window.xpnetViz.state().step") == 1
    page.keyboard.press(" ")
    assert page.evaluate("window.xpnetViz.state().playing")
    page.wait_for_function("window.xpnetViz.state().step >= 2", timeout=5000)
    page.click("[data-testid=play]")
    assert not page.evaluate("window.xpnetViz.state().playing")
    # a picture for the README: layer 1's backward step on (0, 1), a third into training
    page.evaluate("window.xpnetViz.setFrame(30); window.xpnetViz.setSample(1); window.xpnetViz.goTo(9)")
    save_screenshot(page, "visualizer.png", tmp_path_factory)
    assert page.problems == []


def test_training_slider_replays_xor_being_learned(page, xor_page):
    page.goto(xor_page.as_uri())
    data = page.evaluate("window.xpnetViz.data")
    frames = data["frames"]
    assert len(frames) == 101 and [f["epoch"] for f in frames] == [30 * k for k in range(101)]
    assert len(data["curve"]["epoch"]) == 3001 and page.locator("[data-testid=loss-line]").count() == 1
    marker = page.locator("[data-testid=loss-marker]")
    x0 = float(marker.get_attribute("cx"))
    edge0 = page.locator("[data-testid=edge-0-0-0] text").text_content()
    for k in (50, 100):
        page.locator("[data-testid=epoch-slider]").fill(str(k))
        epoch = 30 * k
        assert page.locator("[data-testid=epoch-label]").text_content() == f"epoch {epoch} of 3000"
        model = reference_mlp(epoch)
        loss, acc = xpnet.evaluate(model, XOR_X, XOR_Y)
        shown = page.locator("[data-testid=epoch-loss]").text_content()
        assert shown.startswith("loss ") and close_at_print(shown[5:], loss), (shown, loss)
        assert page.evaluate("window.xpnetViz.state()")["loss"] == shown and page.evaluate(
            "window.xpnetViz.state().frame") == k
        assert close_at_print(page.locator("[data-testid=epoch-accuracy]").text_content().split()[1], acc)
        assert data["curve"]["loss"][epoch] == pytest.approx(frames[k]["loss"], rel=1e-12)  # the curve agrees
    assert float(marker.get_attribute("cx")) > x0 and page.locator("[data-testid=edge-0-0-0] text").text_content() != edge0
    # learned: the predictions table shows p < 0.5 for y = 0 and > 0.5 for y = 1
    for k, y in enumerate(XOR_Y):
        p = float(page.locator(f"[data-testid=pred-{k}] td").nth(2).text_content())
        assert (p > 0.5) == bool(y)
    assert page.problems == []


def test_visualizer_draws_a_run_model(page, tmp_path, capsys):
    run = tmp_path / "run"
    train = load_script("train")
    assert train.main(["--epochs", "2", "--samples", "120", "--hidden", "4", "--dropout", "0", "--quiet",
                       "--out", str(run)]) == 0
    capsys.readouterr()
    out = tmp_path / "viz.html"
    assert load_script("visualize").main(["--run", str(run), "--out", str(out)]) == 0
    page.goto(out.as_uri())
    data = page.evaluate("window.xpnetViz.data")
    assert data["sizes"] == [2, 4, 1] and data["frames"][-1]["epoch"] == 2 and len(data["samples"]) == 4
    from _cli.runmodel import load_run_model

    model = load_run_model(str(run)).model
    x, y = np.asarray(data["frames"][-1]["traces"][0]["layers"][0]["x"]), data["frames"][-1]["traces"][0]["target"]
    loss, dWs, _ = model.loss_and_grads(x[None, :], np.asarray(y, dtype=np.int64))
    page.evaluate(f"window.xpnetViz.setFrame({len(data['frames']) - 1})")
    for _ in range(11):
        page.click("[data-testid=next]")
        state = page.evaluate("window.xpnetViz.state()")
        if state["kind"] == "loss":
            assert_shown(state["values"]["L"], [float(loss)], "run loss")
        if state["kind"] == "grads" and state["layer"] == 0:
            assert_shown(state["values"]["dW"], np.array(dWs[0]), "run dW of layer 1")
    assert page.evaluate("window.xpnetViz.state().kind") == "update" and page.problems == []


def _one_line_exit_2(capsys, argv, *words):
    assert load_script("visualize").main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def test_refuses_a_missing_run_folder_and_a_large_model(tmp_path, capsys):
    _one_line_exit_2(capsys, ["--run", str(tmp_path / "nope")], "no such run folder")
    (tmp_path / "empty").mkdir()
    _one_line_exit_2(capsys, ["--run", str(tmp_path / "empty")], "not a run folder")
    run = tmp_path / "big"
    assert load_script("train").main(["--epochs", "1", "--samples", "120", "--hidden", "16", "--quiet",
                                      "--out", str(run)]) == 0
    capsys.readouterr()
    _one_line_exit_2(capsys, ["--run", str(run)], "too large to draw", "16", "at most 8 units")
    _one_line_exit_2(capsys, ["--hidden", "9"], "at most 8 units")
    assert not (run / "visualizer.html").exists()


def test_open_hands_the_file_url_to_the_browser(tmp_path, monkeypatch, capsys):
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    out = tmp_path / "v.html"
    assert load_script("visualize").main(["--epochs", "20", "--frames", "3", "--out", str(out), "--open"]) == 0
    assert opened == [out.resolve().as_uri()] and str(out) in capsys.readouterr().out
