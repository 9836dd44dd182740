#!/usr/bin/env python
"""Benchmark xpnet against plain NumPy, scikit-learn, PyTorch, Thinc and JAX (issues 6, 16).

Every peer trains the same network on the same data with the same batch size,
optimiser (Adam) and number of epochs, in this one process.  Repeats alternate
between peers (repeat r runs every peer once before repeat r+1 starts, the
starting peer rotating), and the median time is reported.

Timed region, identical for every peer: build the model from scratch and train
it for all epochs, starting from the host NumPy arrays (so a GPU peer's copy of
the training set to the device is included) and ending after a device sync.
Data generation, imports, backend/context creation, one untimed warm-up run
per peer and task, and evaluation are outside it.

Examples
    python scripts/bench.py --task small
    python scripts/bench.py --task all --repeats 3 --json out.json --markdown out.md
    python scripts/bench.py --task large --peers xpnet,torch-cpu --backends torch:cpu
    python scripts/bench.py --task small --tiny --repeats 1      # smoke test

Only numpy is imported at module level; torch, scikit-learn, thinc, jax, cupy
and xpnet are imported by the peers that need them, and a missing one is
reported as "skipped (not installed)" (pip install "xpnet[bench]" adds Thinc and JAX).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import sys
import time
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import measure, report  # noqa: E402
from benchmarks.peers import BASE_PEERS, KNOWN_GPU_SPECS, PEER_GROUPS, make_peer, xpnet_backend_specs  # noqa: E402
from benchmarks.tasks import TASK_NAMES, get_task, make_data  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- arguments

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="small",
                   help="small|medium|large|xlarge|all, or a comma list "
                        "(all = small,medium,large, plus xlarge when a GPU is present)")
    p.add_argument("--peers", default=None,
                   help="comma list of: xpnet (every --backends spec; GPU specs also as xpnet-eager:<spec>, "
                        "without CUDA graphs), xpnet:<spec>, xpnet-eager:<spec>, "
                        + ", ".join(BASE_PEERS) + "; torch, thinc, jax (every peer of that "
                        "library). "
                        "Default: all. On xlarge only GPU peers run unless CPU peers "
                        "are named here.")
    p.add_argument("--backends", default=None,
                   help="comma list of xpnet backend specs (e.g. numpy,torch:cpu,strict). "
                        "Default: every backends.available() spec except the strict "
                        "conformance backends; 'all' includes them.")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=None, help="override every task's epochs")
    p.add_argument("--l2", type=float, default=None,
                   help="L2 strength: loss += l2/2 * sum(W**2) (default 0)")
    p.add_argument("--warmup", type=int, default=1, choices=(0, 1),
                   help="untimed warm-up run (1 epoch on a few batches) per peer and task")
    p.add_argument("--tiny", action="store_true",
                   help="shrink every task to a few hundred samples and 1-2 epochs")
    p.add_argument("--matmul-time", type=float, default=None,
                   help="seconds spent measuring each matmul rate (default 0.5, tiny 0.05)")
    p.add_argument("--max-contention", type=float, default=0.25, metavar="SHARE",
                   help="redo a timed run (after waiting for the machine to go quiet) when "
                        "other processes used more than this share of the CPUs during it "
                        "(default 0.25; runs under 0.25 s are not checked)")
    p.add_argument("--retries", type=int, default=2,
                   help="redo a contended run at most this many times (default 2)")
    p.add_argument("--json", default=None, metavar="PATH")
    p.add_argument("--markdown", default=None, metavar="PATH")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def resolve_tasks(spec: str, has_gpu: bool) -> list[str]:
    names = []
    for part in spec.split(","):
        part = part.strip()
        if part == "all":
            names += ["small", "medium", "large"] + (["xlarge"] if has_gpu else [])
        elif part in TASK_NAMES:
            names.append(part)
        else:
            raise SystemExit(f"unknown task {part!r}; choose from {TASK_NAMES} or all")
    return list(dict.fromkeys(names))


def resolve_peer_names(args):
    """Return (ordered peer names, {name: skip reason}, explicit_cpu_names)."""
    backends = None
    if args.backends and args.backends != "all":
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    specs, skipped_specs = xpnet_backend_specs(backends, include_strict=args.backends == "all")

    requested = ([p.strip() for p in args.peers.split(",") if p.strip()]
                 if args.peers else ["xpnet", *BASE_PEERS])
    names, skipped = [], {}
    for name in requested:
        if name == "xpnet":  # on a GPU also with eager launches (no CUDA graphs), side by side
            names += [n for s in specs for n in [f"xpnet:{s}"] + ([f"xpnet-eager:{s}"] if s in KNOWN_GPU_SPECS else [])]
            for s, why in skipped_specs.items():
                skipped["xpnet" if s == "xpnet" else f"xpnet:{s}"] = why
        elif name in PEER_GROUPS:
            names += list(PEER_GROUPS[name])
        else:
            make_peer(name)  # validates the name
            names.append(make_peer(name).name)
    names = list(dict.fromkeys(names))
    for n in names:
        skipped.pop(n, None)
    return names, skipped, bool(args.peers)


# ---------------------------------------------------------------- metrics

def cross_entropy(P: np.ndarray, y: np.ndarray, eps: float = 1e-7) -> float:
    P = np.asarray(P, dtype=np.float64)
    if P.ndim == 1 or P.shape[1] == 1:
        p = np.clip(P.reshape(-1), eps, 1 - eps)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    p = np.clip(P[np.arange(len(y)), y], eps, 1.0)
    return float(-np.mean(np.log(p)))


def accuracy(P: np.ndarray, y: np.ndarray) -> float:
    P = np.asarray(P)
    pred = (P.reshape(-1) > 0.5).astype(np.int64) if P.ndim == 1 or P.shape[1] == 1 \
        else np.argmax(P, axis=1)
    return float(np.mean(pred == y))


# ---------------------------------------------------------------- running

def warm_up(peer, task, data):
    """One untimed epoch on a few batches: JIT/kernel caches, BLAS threads, allocators.

    The batches have the timed runs' shapes (full ones and the same short last one),
    so peers that compile per batch shape (torch.compile) compile here, untimed; then
    peer.prepare() does what depends on the whole data's shape (jax.jit compiles).
    """
    import dataclasses
    n = min(data.n_train, 8 * task.batch_size + data.n_train % task.batch_size)
    t = dataclasses.replace(task, epochs=1)
    peer.fit(t, data.X_train[:n], data.y_train[:n])
    peer.sync()
    peer.predict_proba(data.X_test[:64])
    peer.release()
    peer.prepare(task, data)
    peer.sync()


def run_once(peer, task, data):
    dev = measure.DeviceMemory(peer.device_memory)
    dev.reset()
    peer.sync()
    with measure.RSSSampler() as rss, measure.CPUContention() as load:
        t0 = time.perf_counter()
        losses = peer.fit(task, data.X_train, data.y_train)
        peer.sync()
        seconds = time.perf_counter() - t0
    device_mb = dev.peak_mb()
    P_train = peer.predict_proba(data.X_train)
    P_test = peer.predict_proba(data.X_test)
    peer.release()
    return {
        "seconds": seconds,
        "epoch_losses": losses,
        "last_epoch_loss": losses[-1] if losses else None,
        "final_train_loss": cross_entropy(P_train, data.y_train),
        "train_accuracy": accuracy(P_train, data.y_train),
        "test_accuracy": accuracy(P_test, data.y_test),
        "peak_rss_mb": rss.delta_mb,
        "device_peak_mb": device_mb,
        "other_processes_cpu_share": load.foreign_share,
    }


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(task, data, runs, matmul_rates, peer):
    times = [r["seconds"] for r in runs]
    med = statistics.median(times)
    samples = data.n_train * task.epochs
    flops = 6.0 * task.n_weights * samples
    gflops = flops / med / 1e9
    ref = matmul_rates.get(peer.matmul_lib)
    peaks_rss = [r["peak_rss_mb"] for r in runs if r["peak_rss_mb"] is not None]
    peaks_dev = [r["device_peak_mb"] for r in runs if r["device_peak_mb"] is not None]
    return {
        "status": "ok",
        "backend": peer.backend_desc,
        "times_s": times,
        "median_s": med,
        "min_s": min(times),
        "samples_per_s": samples / med,
        "final_train_loss": _median([r["final_train_loss"] for r in runs]),
        "last_epoch_loss": _median([r["last_epoch_loss"] for r in runs]),
        "train_accuracy": _median([r["train_accuracy"] for r in runs]),
        "test_accuracy": _median([r["test_accuracy"] for r in runs]),
        "peak_rss_mb": max(peaks_rss) if peaks_rss else None,
        "device_peak_mb": max(peaks_dev) if peaks_dev else None,
        "gflops": gflops,
        "matmul_ref": peer.matmul_lib,
        "pct_of_matmul": (100.0 * gflops / ref["gflops"]) if ref else None,
        "discarded_contended_runs": sum(len(r.get("discarded_contended_runs", []))
                                        for r in runs),
        "other_processes_cpu_share_max": max(
            (r["other_processes_cpu_share"] for r in runs
             if r["other_processes_cpu_share"] is not None), default=None),
        "epoch_losses": runs[-1]["epoch_losses"],
        "repeats": runs,
    }


def run_task(task_name, args, peer_names, skipped, explicit_peers, peers_cache):
    task = get_task(task_name, tiny=args.tiny, epochs=args.epochs, l2=args.l2)
    log(f"== task {task.name}: {task.description}, sizes {list(task.sizes)}, "
        f"batch {task.batch_size}, {task.epochs} epochs")
    t0 = time.perf_counter()
    data = make_data(task, seed=0)
    log(f"   data: {data.n_train} train / {data.n_test} test "
        f"({time.perf_counter() - t0:.1f}s to generate)")

    results = {name: {"status": "skipped", "reason": why} for name, why in skipped.items()}
    runnable = []
    for name in peer_names:
        if name not in peers_cache:
            peer = make_peer(name)
            why = peer.check()
            if why is None:
                try:
                    peer.setup()
                except Exception as exc:  # noqa: BLE001
                    why = f"error in setup: {type(exc).__name__}: {exc}"
                    peers_cache[name] = (peer, why, traceback.format_exc())
                else:
                    peers_cache[name] = (peer, None, None)
            else:
                peers_cache[name] = (peer, why, None)
        peer, why, tb = peers_cache[name]
        if why is not None:
            results[name] = ({"status": "error", "reason": why, "traceback": tb}
                             if why.startswith("error") else
                             {"status": "skipped", "reason": why})
            continue
        if task.gpu_only_default and not explicit_peers and peer.device_memory is None:
            results[name] = {"status": "skipped",
                             "reason": "CPU peer on a GPU-size task (name it in --peers)"}
            continue
        runnable.append(peer)

    # bound training batch size to the data (tiny mode)
    if task.batch_size > data.n_train:
        import dataclasses
        task = dataclasses.replace(task, batch_size=data.n_train)

    failed = {}

    def attempt(peer, fn, what):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            failed[peer.name] = {"status": "error",
                                 "reason": f"error in {what}: {type(exc).__name__}: {exc}",
                                 "traceback": traceback.format_exc()}
            log(f"   {peer.name}: FAILED in {what}: {type(exc).__name__}: {exc}")
            try:
                peer.release()
            except Exception:  # noqa: BLE001
                pass
            return None

    if args.warmup:
        for peer in runnable:
            attempt(peer, lambda: warm_up(peer, task, data), "warm-up")

    runs = {p.name: [] for p in runnable}
    for r in range(args.repeats):
        alive = [p for p in runnable if p.name not in failed]
        if not alive:
            break
        k = r % len(alive)
        for peer in alive[k:] + alive[:k]:
            if peer.name in failed:
                continue
            res = attempt(peer, lambda: run_once(peer, task, data), f"repeat {r + 1}")
            redone = []
            while (res is not None and len(redone) < args.retries
                   and (res["other_processes_cpu_share"] or 0) > args.max_contention):
                log(f"   [{r + 1}/{args.repeats}] {peer.name:<18} {res['seconds']:8.3f}s  "
                    f"discarded: other processes used "
                    f"{100 * res['other_processes_cpu_share']:.0f} % of the CPUs; redoing")
                redone.append({k: res[k] for k in ("seconds", "other_processes_cpu_share")})
                measure.wait_until_quiet(args.max_contention / 2, max_wait=120)
                res = attempt(peer, lambda: run_once(peer, task, data), f"repeat {r + 1}")
            if res is not None:
                res["discarded_contended_runs"] = redone
                runs[peer.name].append(res)
                log(f"   [{r + 1}/{args.repeats}] {peer.name:<18} {res['seconds']:8.3f}s  "
                    f"loss {res['final_train_loss']:.4f}  test acc {res['test_accuracy']:.4f}"
                    f"  rss +{res['peak_rss_mb'] or 0:.0f} MB"
                    + (f"  (other processes {100 * res['other_processes_cpu_share']:.0f} % CPU)"
                       if res["other_processes_cpu_share"] else ""))

    # matmul rate of this task's forward/backward shapes, per library used
    matmul_time = args.matmul_time if args.matmul_time is not None else \
        (0.05 if args.tiny else 0.5)
    matmul_rates = {}
    for lib in dict.fromkeys(p.matmul_lib for p in runnable if p.name not in failed):
        try:
            for attempt_no in range(args.retries + 1):
                with measure.CPUContention() as load:
                    rate = measure.step_matmul_rate(lib, task.sizes, task.batch_size,
                                                    min_time=matmul_time)
                rate["other_processes_cpu_share"] = load.foreign_share
                if (load.foreign_share or 0) <= args.max_contention:
                    break
                log(f"   matmul rate {lib}: contended ({100 * load.foreign_share:.0f} %), redoing")
                measure.wait_until_quiet(args.max_contention / 2, max_wait=120)
            matmul_rates[lib] = rate
            log(f"   matmul rate {lib}: {matmul_rates[lib]['gflops']:.2f} GFLOP/s")
        except Exception as exc:  # noqa: BLE001
            matmul_rates[lib] = None
            log(f"   matmul rate {lib}: failed ({exc})")
    matmul_rates = {k: v for k, v in matmul_rates.items() if v is not None}

    for peer in runnable:
        if peer.name in failed:
            results[peer.name] = failed[peer.name]
        else:
            results[peer.name] = summarise(task, data, runs[peer.name], matmul_rates, peer)

    ok = {n: r for n, r in results.items() if r["status"] == "ok"}
    for name, r in ok.items():
        r["ratios"] = {other: o["median_s"] / r["median_s"] for other, o in ok.items()
                       if other != name}

    order = [n for n in peer_names if n in results] + \
        [n for n in results if n not in peer_names]
    return {
        "loadavg_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "task": {
            "name": task.name, "description": task.description,
            "sizes": list(task.sizes), "batch_size": task.batch_size,
            "epochs": task.epochs, "lr": task.lr, "l2": task.l2,
            "optimizer": "Adam(beta1=0.9, beta2=0.999, eps=1e-8)",
            "dtype": "float32", "n_train": data.n_train, "n_test": data.n_test,
            "n_weights": task.n_weights, "n_params": task.n_params,
            "flops_per_epoch": 6.0 * task.n_weights * data.n_train,
            "tiny": bool(args.tiny),
        },
        "matmul_rates": matmul_rates,
        "peers": {n: results[n] for n in order},
    }


def _clean(obj):
    """JSON-safe: non-finite floats become None, numpy scalars become Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_outputs(out, args) -> str:
    md = report.markdown(out)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(md)
    return md


def main(argv=None):
    args = parse_args(argv)
    command = shlex.join(["python", *(sys.argv if argv is None else ["scripts/bench.py", *argv])])
    meta = measure.machine_info(command, ROOT)
    meta["python_executable"] = sys.executable
    has_gpu = meta["gpu"] is not None
    task_names = resolve_tasks(args.task, has_gpu)
    peer_names, skipped, explicit = resolve_peer_names(args)
    log(f"peers: {', '.join(peer_names) or '(none)'}"
        + (f"; skipped: {', '.join(skipped)}" if skipped else ""))

    out = {"meta": meta, "args": vars(args), "tasks": {}}
    peers_cache = {}
    for name in task_names:
        out["tasks"][name] = run_task(name, args, peer_names, skipped, explicit, peers_cache)
        write_outputs(_clean(out), args)  # partial results survive an interrupted run

    # versions and the big-square matmul peak of each library that ran
    if "xpnet" in sys.modules:
        meta["versions"].setdefault(
            "xpnet", getattr(sys.modules["xpnet"], "__version__", "(source tree)"))
    libs = {r["matmul_ref"] for t in out["tasks"].values() for r in t["peers"].values()
            if r["status"] == "ok"}
    meta["square_matmul_peak"] = {}
    for lib in sorted(libs):
        n = 512 if args.tiny else (8192 if lib in ("torch-cuda", "cupy") else 2048)
        try:
            meta["square_matmul_peak"][lib] = measure.square_matmul_rate(
                lib, n, min_time=0.05 if args.tiny else 0.5)
        except Exception as exc:  # noqa: BLE001
            log(f"square matmul {lib}: failed ({exc})")
    if "torch" in sys.modules:
        meta["torch_num_threads"] = sys.modules["torch"].get_num_threads()

    out = _clean(out)
    md = write_outputs(out, args)
    print(md)
    errors = [f"{t}/{p}" for t, tr in out["tasks"].items()
              for p, r in tr["peers"].items() if r["status"] == "error"]
    if errors:
        log("errors: " + ", ".join(errors))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
