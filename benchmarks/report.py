"""Markdown rendering of a benchmark result (the dict scripts/bench.py writes as JSON)."""

from __future__ import annotations

REFERENCE_PEERS = ("plain-numpy", "sklearn", "torch-cpu", "torch-tuned-cpu", "torch-compile-cpu",
                   "thinc-cpu", "jax-cpu", "torch-cuda", "torch-tuned-cuda", "torch-compile-cuda",
                   "thinc-cuda", "jax-cuda")


def _f(v, fmt="{:.3g}", none="–"):
    return none if v is None else fmt.format(v)


def _secs(v):
    if v is None:
        return "–"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def _rate(v):
    if v is None:
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _ratio(v):
    return "–" if v is None else f"{v:.2f}×"


def _blas_line(blas):
    parts = []
    for d in blas or []:
        if "internal_api" in d:
            s = f"{d.get('internal_api')} {d.get('version') or ''}".strip()
            extra = [f"{d['num_threads']} threads"] if d.get("num_threads") else []
            if d.get("architecture"):
                extra.append(d["architecture"])
            if d.get("prefix"):
                extra.append(d["prefix"])
            parts.append(s + (f" ({', '.join(extra)})" if extra else ""))
        else:
            parts.append(str(d))
    return "; ".join(parts) or "unknown"


def header(meta):
    gpu = meta.get("gpu")
    gpu_s = "none" if not gpu else (
        f"{gpu['name']} ({gpu.get('memory_gb')} GB"
        + (f", CUDA {gpu['cuda']}" if gpu.get("cuda") else "")
        + (f", TF32 matmul {'on' if gpu.get('tf32_matmul') else 'off'}"
           if "tf32_matmul" in gpu else "") + ")")
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
    peaks = ", ".join(f"{lib} {d['gflops']:.1f} GFLOP/s ({d['n']}³)"
                      for lib, d in meta.get("square_matmul_peak", {}).items())
    env = ", ".join(f"{k}={v}" for k, v in meta.get("env", {}).items()) or "none"
    lines = [
        "# xpnet benchmark",
        "",
        f"- Date: {meta.get('date')}",
        f"- Command: `{meta.get('command')}`",
        f"- Commit: {meta.get('git_commit') or 'n/a'}",
        f"- CPU: {meta.get('cpu_model')}, {meta.get('usable_cores')} usable cores "
        f"({meta.get('logical_cpus')} logical)"
        + (f"; torch threads {meta['torch_num_threads']}" if "torch_num_threads" in meta else ""),
        f"- BLAS: {_blas_line(meta.get('blas'))}",
        f"- GPU: {gpu_s}",
        f"- Versions: {versions}",
        f"- Threading/BLAS environment: {env}",
        f"- float32 square matmul peak, measured: {peaks or 'n/a'}",
        "",
        "Method: every peer trains the same float32 network (ReLU hidden layers, He init, "
        "Adam lr 1e-3, same batch size and epochs) on the same data in this one process. "
        "Repeats alternate between peers; the table gives the median. Timed: model "
        "construction + all training epochs from host NumPy arrays (including any copy to "
        "the device) until a device sync; data generation, imports, one warm-up run, and "
        "evaluation are not timed. *final train loss* is the cross-entropy of the trained "
        "model on the whole training set, computed the same way for every peer (data loss, "
        "no L2 term); *test acc* is on a fixed 20 % hold-out. *peak RSS* is the highest "
        "resident set size above the pre-run baseline (sampled every 5 ms from "
        "/proc/self/statm after releasing freed heap); *device MB* is torch's "
        "max_memory_allocated or the CuPy pool's high-water mark. GFLOP/s counts "
        "6 × weights × samples per epoch; *% matmul* compares it with the rate at which "
        "the peer's array library runs just the forward/backward matmuls of one training "
        "step (same shapes, batch and dtype), measured by this script. "
        "*vs X* = X's median time / this peer's median time (> 1: this peer is faster). "
        "A timed run during which other processes used more than the --max-contention share "
        "of the CPUs is discarded and redone once the machine is quiet (up to --retries times).",
        "",
        "Peer notes: *plain-numpy* is benchmarks/plain_numpy.py (tutorial-style NumPy: "
        "forward cache, hand backprop, Adam with bias correction, new arrays every step). "
        "*sklearn* is MLPClassifier(solver='adam', tol=0, n_iter_no_change=huge, "
        "alpha = l2 × batch size); it cannot use He init (Glorot-uniform weights and "
        "biases), which alone makes its loss after few epochs differ. *torch-cpu/cuda* is "
        "nn.Sequential + torch.optim.Adam (defaults) with a randperm shuffle per epoch and no "
        "per-step synchronisation; *torch-tuned-…* the same with Adam(foreach=True) on CPU and "
        "Adam(fused=True) on CUDA; *torch-compile-…* the tuned one with the model compiled by "
        "torch.compile (default mode on CPU, reduce-overhead on CUDA) once per network and "
        "re-initialised in place per run, compiled during the warm-up. *thinc-…* is Thinc "
        "(NumpyOps / CupyOps) Relu layers + Softmax (or a Linear logit with BCE) and Thinc's Adam "
        "without clipping or averaging. *jax-…* is one jax.jit-compiled step (forward, grad, Adam; "
        "parameters donated; batches gathered on the device), compiled during the warm-up. Thinc "
        "and JAX are compared with NumPy's matmul rate on CPU (CuPy's or torch's on CUDA). "
        "*xpnet:…* is xpnet.MLP + xpnet.fit (train_accuracy=False, as no other peer tracks it); on a "
        "GPU its steps replay from CUDA graphs, and *xpnet-eager:…* is the same run with "
        "XPNET_CUDA_GRAPHS=0 (every kernel launched from Python).",
        "",
    ]
    return "\n".join(lines)


def task_section(name, tr):
    t = tr["task"]
    peers = tr["peers"]
    ok = {n: r for n, r in peers.items() if r["status"] == "ok"}
    refs = [p for p in REFERENCE_PEERS if p in ok]
    any_dev = any(r.get("device_peak_mb") is not None for r in ok.values())
    rates = ", ".join(f"{lib} {d['gflops']:.2f}" for lib, d in tr.get("matmul_rates", {}).items())
    lines = [
        f"## {name}: {t['description']}",
        "",
        f"Network {t['sizes']} ({t['n_params']:,} parameters), batch {t['batch_size']}, "
        f"{t['epochs']} epochs, {t['n_train']:,} train / {t['n_test']:,} test samples, "
        f"{t['flops_per_epoch'] / 1e9:.3g} GFLOP per epoch"
        + (f", L2 {t['l2']}" if t.get("l2") else "") + (" (tiny)" if t.get("tiny") else "")
        + ".",
        f"Measured matmul rate at these shapes (GFLOP/s): {rates or 'n/a'}.",
        "",
    ]
    cols = (["peer", "median s", "samples/s"] + [f"vs {r}" for r in refs]
            + ["final train loss", "test acc", "peak RSS MB"]
            + (["device MB"] if any_dev else []) + ["GFLOP/s", "% matmul"])
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|")
    for pname, r in peers.items():
        if r["status"] != "ok":
            label = f"{r['status']} ({r.get('reason')})"
            lines.append(f"| {pname} | {label} |" + " |" * (len(cols) - 2))
            continue
        row = [pname, _secs(r["median_s"]), _rate(r["samples_per_s"])]
        row += ["1.00×" if ref == pname else _ratio(r["ratios"].get(ref)) for ref in refs]
        row += [_f(r["final_train_loss"], "{:.4f}"), _f(r["test_accuracy"], "{:.3f}"),
                _f(r["peak_rss_mb"], "{:.0f}")]
        if any_dev:
            row.append(_f(r.get("device_peak_mb"), "{:.0f}"))
        row += [_f(r["gflops"], "{:.2f}"),
                _f(r["pct_of_matmul"], "{:.0f} %") + (f" ({r['matmul_ref']})"
                                                      if r["pct_of_matmul"] is not None else "")]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    busy = {n: r["other_processes_cpu_share_max"] for n, r in ok.items()
            if (r.get("other_processes_cpu_share_max") or 0) > 0.10}
    if busy:
        lines.append("**Warning:** other processes used up to "
                     + ", ".join(f"{100 * v:.0f} % ({n})" for n, v in busy.items())
                     + " of the CPUs during timed runs; those timings are inflated.")
        lines.append("")
    redone = {n: r["discarded_contended_runs"] for n, r in ok.items()
              if r.get("discarded_contended_runs")}
    if redone:
        lines.append("Runs discarded and redone because other processes were using the CPUs: "
                     + ", ".join(f"{n} {k}" for n, k in redone.items()) + " (listed in the JSON).")
        lines.append("")
    if len(ok) > 1:
        names = list(ok)
        lines.append("Speed-up matrix (row peer vs column peer: column time / row time):")
        lines.append("")
        lines.append("| | " + " | ".join(names) + " |")
        lines.append("|---|" + "---:|" * len(names))
        for a in names:
            cells = ["1.00×" if a == b else _ratio(ok[a]["ratios"].get(b)) for b in names]
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def markdown(result) -> str:
    parts = [header(result["meta"])]
    for name, tr in result["tasks"].items():
        parts.append(task_section(name, tr))
    return "\n".join(parts)
