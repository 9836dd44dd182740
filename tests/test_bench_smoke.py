"""Smoke test of the benchmark harness (scripts/bench.py); not a timed test.

Runs the small task shrunk by --tiny with one repeat and checks the JSON
report: every peer that ran has a positive time, a finite final loss and an
accuracy in [0, 1]; every other peer is reported as skipped with a reason
(for example torch-cuda on a machine without a GPU), never as an error. A peer
whose library is missing is reported as "skipped (not installed)".
"""

from __future__ import annotations

import importlib.util
import json
import types
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_bench_small_tiny(tmp_path):
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    cmd = [sys.executable, "scripts/bench.py", "--task", "small", "--tiny",
           "--repeats", "1", "--json", str(out), "--markdown", str(md)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"bench.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    result = json.loads(out.read_text())
    assert result["meta"]["command"].endswith("--markdown " + str(md))
    assert result["meta"]["cpu_model"]
    task = result["tasks"]["small"]
    assert task["task"]["tiny"] is True
    assert task["task"]["n_train"] > 0 and task["task"]["epochs"] >= 1
    peers = task["peers"]

    # the baseline always runs (it needs numpy only)
    assert peers["plain-numpy"]["status"] == "ok"
    if _installed("sklearn"):
        assert peers["sklearn"]["status"] == "ok"
    for name, module in [("torch-cpu", "torch"), ("torch-tuned-cpu", "torch"),
                         ("thinc-cpu", "thinc"), ("jax-cpu", "jax")]:
        if _installed(module):
            assert peers[name]["status"] == "ok", (name, peers[name])
        else:
            assert peers[name] == {"status": "skipped", "reason": "not installed"}
    # torch.compile runs where it works here, else it is skipped with the reason
    assert peers["torch-compile-cpu"]["status"] == "ok" or \
        peers["torch-compile-cpu"]["reason"].startswith(("not installed", "torch.compile failed"))
    # the GPU peers appear either way: run, or skipped with a reason
    for name in ("torch-cuda", "torch-tuned-cuda", "torch-compile-cuda", "thinc-cuda", "jax-cuda"):
        assert name in peers
    if _installed("xpnet"):
        assert any(name.startswith("xpnet:") and r["status"] == "ok"
                   for name, r in peers.items()), peers

    n_ok = 0
    for name, r in peers.items():
        assert r["status"] in ("ok", "skipped"), (name, r)
        if r["status"] == "skipped":
            assert r["reason"], name
            continue
        n_ok += 1
        assert r["median_s"] > 0 and all(t > 0 for t in r["times_s"]), name
        assert r["final_train_loss"] is not None and math.isfinite(r["final_train_loss"]), name
        assert 0.0 <= r["test_accuracy"] <= 1.0, name
        assert r["samples_per_s"] > 0 and r["gflops"] > 0, name
        assert set(r["ratios"]) == {n for n, o in peers.items()
                                    if o["status"] == "ok" and n != name}
    assert n_ok >= 1

    text = md.read_text()
    assert "| peer | median s |" in text and "plain-numpy" in text


def _bench_module() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("xpnet_bench_script", os.path.join(ROOT, "scripts", "bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_libraries_are_reported_as_skipped(tmp_path, monkeypatch):
    """Peers whose library is not installed are listed as skipped, not run and not errors."""
    bench = _bench_module()
    import benchmarks.peers as peers_module

    missing = {"thinc", "jax", "torch"}
    monkeypatch.setattr(peers_module, "_installed", lambda module: module not in missing)
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    peers = ["plain-numpy", "thinc-cpu", "jax-cpu", "torch-tuned-cpu", "torch-compile-cpu", "thinc-cuda"]
    rc = bench.main(["--task", "small", "--tiny", "--repeats", "1", "--warmup", "0",
                     "--peers", ",".join(peers), "--json", str(out), "--markdown", str(md)])
    assert rc == 0
    result = json.loads(out.read_text())["tasks"]["small"]["peers"]
    assert list(result) == peers
    assert result["plain-numpy"]["status"] == "ok"
    assert result["plain-numpy"]["ratios"] == {}  # nothing else ran
    for name in peers[1:]:
        assert result[name] == {"status": "skipped", "reason": "not installed"}, name
    text = md.read_text()
    assert "| thinc-cpu | skipped (not installed) |" in text
    assert "vs jax-cpu" not in text  # a skipped peer gets no ratio column
