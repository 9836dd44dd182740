"""float32 vs float16 vs bfloat16 compute: training time and test accuracy (issue 13).

    python benchmarks/precision.py

MLP with dropout 0.1, Adam 1e-3, batch 32; moons (1000 rows, 800 train) 100 epochs, digits (standardized,
1400 train) 30 epochs; every backend here that has the dtype. Prints a Markdown table.
"""
import time, numpy as np, xpnet
from sklearn.datasets import make_moons, load_digits
def moons():
    X, y = make_moons(1000, noise=0.2, random_state=0); return X[:800], y[:800], X[800:], y[800:], [2, 64, 32, 1], 100
def digits():
    X, y = load_digits(return_X_y=True); X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    return X[:1400], y[:1400], X[1400:], y[1400:], [64, 128, 64, 10], 30
rows = []
for dname, data in (("moons", moons), ("digits", digits)):
    Xtr, ytr, Xte, yte, sizes, epochs = data()
    for be in ("numpy", "torch:cpu"):
        for p in ("float32", "float16", "bfloat16"):
            try:
                m = xpnet.MLP(sizes, backend=be, precision=p, seed=0, dropout=0.1)
            except ValueError:
                continue
            t = time.perf_counter()
            h = xpnet.fit(m, Xtr, ytr, optimizer=xpnet.Adam(lr=1e-3), epochs=epochs, batch_size=32)
            secs = time.perf_counter() - t
            acc = float(np.mean(np.asarray(m.backend.to_numpy(m.predict(Xte))).reshape(-1) == yte))
            skipped = sum(h.get("skipped_steps", []) or [0])
            rows.append(f"| {dname} | {be} | {p} | {secs:.2f} | {acc:.4f} | {skipped} |")
print("| data | backend | precision | train s | test accuracy | skipped steps |\n|---|---|---|---:|---:|---:|")
print("\n".join(rows))
