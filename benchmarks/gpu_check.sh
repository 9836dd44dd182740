#!/usr/bin/env bash
# The GPU checks of issue 16 in one run, for a session that is lent a GPU machine (about 8 minutes on an H100).
#
#   bash benchmarks/gpu_check.sh            # logs and results under $OUT (default /tmp/xpnet-gpu), a table last
#
# 1. tests/test_graphed.py (CUDA graph replays against eager launches, on cupy and torch:cuda), the
#    cross-backend parity tests and the fast-path tests, on numpy, cupy and torch:cuda;
# 2. scripts/bench.py on small, medium, large and xlarge: xpnet with CUDA graphs (xpnet:<spec>) and without
#    (xpnet-eager:<spec>) beside PyTorch eager, fused Adam and torch.compile, ratios from one run.
# Wheels the machine lacks (array-api-compat, array-api-strict) are installed from ./.whl when it is there.
set -u
OUT=${OUT:-/tmp/xpnet-gpu}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
git rev-parse --short HEAD > "$OUT/commit.txt" 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1

XPNET_BACKENDS=numpy,cupy,torch:cuda timeout 240 python3 -m pytest -q -p no:cacheprovider -rs \
    tests/test_graphed.py tests/test_parity.py tests/test_fast_paths.py > "$OUT/tests.log" 2>&1
echo "tests: $(tail -1 "$OUT/tests.log")"

timeout 330 python3 scripts/bench.py --task small,medium,large,xlarge --repeats 3 --backends cupy,torch:cuda \
    --peers xpnet,torch-cuda,torch-tuned-cuda,torch-compile-cuda \
    --json "$OUT/bench.json" --markdown "$OUT/bench.md" > "$OUT/bench.log" 2>&1
echo "bench: exit $?"
python3 - "$OUT/bench.json" <<'PY'
import json, sys
try:
    out = json.load(open(sys.argv[1]))
except (OSError, ValueError) as exc:
    sys.exit(f"no bench result: {exc}")
for task, tr in out["tasks"].items():
    steps = tr["task"]["epochs"] * -(-tr["task"]["n_train"] // tr["task"]["batch_size"])
    ok = {n: r for n, r in tr["peers"].items() if r.get("status") == "ok"}
    print(f"{task}: {steps} steps")
    for name, r in ok.items():
        print(f"  {name:24s} {r['median_s']:8.3f} s  {1e6 * r['median_s'] / steps:9.1f} us/step")
PY
