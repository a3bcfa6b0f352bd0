"""The package before and after it was laid out as the loop, side by side: `Service.rank` latency in process, and the cost
of the hybrid inference path.

    git worktree add /tmp/before c6b6297      # the last commit of the flat layout
    .venv/bin/python bench/bench_layout.py --before /tmp/before --repeats 3

Each measurement runs in a fresh subprocess whose `PYTHONPATH` puts one layout's `loopkit` first; the two layouts alternate
(before, after, before, after, ...) so that both see the same machine load, and the medians and their ratio are reported.
A probe trains the same lr model on the same synthetic events (20,000, seed 0), warms the online features with them,
and times `rank` over 100 candidates (top 10, online features, scoring, no log) for --requests requests after 200 warm-up
requests. The hybrid rows (after only) time the same requests with a teacher under the `teacher` alias (a DeepFM), once
with every request confident (the student answers) and once with every request cold (the teacher answers).
"""
import argparse, json, os, statistics, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r'''
import json, sys, tempfile, time, warnings
warnings.filterwarnings("ignore")
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
try:
    from loopkit.ingest.synth import synth_events
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.features.batch import build_table
    from loopkit.training.fit import fit
    from loopkit.serving.scoring import warm_features
    from loopkit.serving.service import Service
    from loopkit.serving.sources import LocalModels
    layout = "after"
except ImportError:
    from loopkit.data import synth_events
    from loopkit.privacy import pseudonymize_events
    from loopkit.features import build_table
    from loopkit.train import fit
    from loopkit.serve import LocalModels, Service, warm_features
    layout = "before"
mode, n = sys.argv[1], int(sys.argv[2])
KEY = b"bench-layout-key-0123456789"
work = Path(tempfile.mkdtemp())
events = pseudonymize_events(synth_events(20_000, days=7, seed=0), KEY)
spec = build_table(events, work / "features")
fit(work / "features" / "table.parquet", spec, model="lr", max_epochs=1).save(work / "student")
models, kw = {"1": work / "student"}, {}
if mode != "plain":
    from loopkit.serving.hybrid import HybridRouting
    fit(work / "features" / "table.parquet", spec, model="deepfm", max_epochs=1, config={"embed_dim": 16, "hidden": [256, 128]}).save(work / "teacher")
    models["t"] = work / "teacher"
    kw["hybrid"] = HybridRouting(cold=("user_id",), cold_share=0.5 if mode == "cold" else 1.0, budget_ms=None)
svc = Service(LocalModels(models, {"champion": "1", **({"teacher": "t"} if mode != "plain" else {})}), warm_features(events, key=KEY), key=KEY, k=10, **kw)
items = np.unique(events["item_id"].to_numpy())[:100]
cats = dict(zip(events["item_id"].to_pylist(), events["category"].to_pylist()))
cands = [{"item_id": int(i), "category": cats[int(i)]} for i in items]
ctx = {"age_band": "25-34", "region": "north", "device": "ios"}
t0 = int(events["ts"][-1].as_py()) + 1
users = [f"user-{i}" for i in range(500)] if mode == "cold" else [str(u) for u in range(1, 501)]
for i in range(200): svc.rank(users[i % len(users)], cands, ctx, ts=t0 + i)
lat = []
for i in range(n):
    s = time.perf_counter(); svc.rank(users[(i * 7) % len(users)], cands, ctx, ts=t0 + 200 + i); lat.append((time.perf_counter() - s) * 1e3)
svc.metrics_text()  # sets the hybrid gauges
share = svc.metrics_.value("loopkit_hybrid_teacher_share") if mode != "plain" else None
print(json.dumps({"layout": layout, "mode": mode, "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "teacher_share": share}))
'''


def probe(pythonpath:str, mode:str, requests:int) -> dict:
    env = {**os.environ, "PYTHONPATH": pythonpath, "MLFLOW_DISABLE_TELEMETRY": "true"}
    out = subprocess.run([sys.executable, "-c", PROBE, mode, str(requests)], env=env, capture_output=True, text=True, check=True, cwd="/tmp")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="a checkout of the flat layout (git worktree add /tmp/before c6b6297)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--requests", type=int, default=3000)
    a = ap.parse_args()
    runs = {"before": [], "after": [], "hybrid confident": [], "hybrid cold": []}
    for r in range(a.repeats):
        for name, path, mode in (("before", a.before, "plain"), ("after", str(ROOT), "plain")):
            got = probe(path, mode, a.requests)
            assert got["layout"] == name, f"{path} imported the {got['layout']} layout"
            runs[name].append(got); print(f"repeat {r}: {name} {got}", file=sys.stderr)
    for name, mode in (("hybrid confident", "confident"), ("hybrid cold", "cold")):
        for r in range(a.repeats): runs[name].append(probe(str(ROOT), mode, a.requests // 3))
    med = {k: {q: statistics.median(x[q] for x in v) for q in ("p50", "p99")} for k, v in runs.items()}
    share = {k: statistics.median(x["teacher_share"] for x in v) if v and v[0].get("teacher_share") is not None else None for k, v in runs.items()}
    print(f"\n`Service.rank`, 100 candidates, top 10, in process, {a.requests} requests, median of {a.repeats} interleaved runs (ms)\n")
    print("| layout | p50 ms | p99 ms | p50 / before | p99 / before | teacher share |")
    print("|---|---:|---:|---:|---:|---:|")
    for k in runs:
        ratio = lambda q: f"{med[k][q] / med['before'][q]:.2f}x"
        print(f"| {k} | {med[k]['p50']:.2f} | {med[k]['p99']:.2f} | {ratio('p50')} | {ratio('p99')} | {'-' if share[k] is None else f'{share[k]:.2f}'} |")


if __name__ == "__main__":
    main()
