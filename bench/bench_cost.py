"""Cost and capacity, side by side in one run.

    .venv/bin/python bench/bench_cost.py [--events 50000] [--seconds 6]

1. The ledger of the default pipeline, per stage: a fresh project runs `loopkit run` (the built-in pipeline on the
   synthetic feed) and its `runs/latest/ledger.json` is printed at the pipeline file's prices.
2. The serving cost of 1,000 requests of that run's teacher (train stage) and student (distill stage): each is pressed
   in the sandbox (`loopkit.serving.pressure.load_test`: the service's own code on loopback) at the same rate with the
   same request mix (100 candidates a request); CPU per request comes from the service's own accounting.
3. The pressure test's verdicts against the student as champion: the student itself, the teacher, and a planted wide
   DCN-v2 (2 x 2048 hidden units, 6 cross layers), at 20 requests/s with a 50 ms objective and a 1.5x CPU ratio.
4. The degradation curve: `loopkit serve` of the wide DCN-v2 with and without `--degrade`, at offered rates from 0.5x
   to 3x its measured capacity, open-loop: p99, failed requests and the share served at each level.
"""
import argparse, json, os, subprocess, sys, tempfile, time, warnings
from pathlib import Path
import httpx, numpy as np, pandas as pd
warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]; sys.path.insert(0, str(ROOT))
from loopkit.loop.cost import ledger_frame, check_prices
from loopkit.serving.pressure import load_test, press, pressure_test, recorded_requests

ap = argparse.ArgumentParser(); ap.add_argument("--events", type=int, default=50_000); ap.add_argument("--seconds", type=float, default=6.0)
args = ap.parse_args()
LOOPKIT = Path(sys.executable).parent / "loopkit"
tmp = Path(tempfile.mkdtemp()); env = {**os.environ, "LOOPKIT_HMAC_KEY": "bench-cost-key-0123456789abcdef"}
out = {}

# 1. the ledger of the default pipeline
subprocess.run([LOOPKIT, "init", tmp / "project"], check=True, capture_output=True)
t0 = time.time()
p = subprocess.run([LOOPKIT, "run", "-q", "-p", f"ingest.n_events={args.events}"], cwd=tmp / "project", env=env, capture_output=True, text=True)
if p.returncode: sys.exit(f"the pipeline failed: {p.stderr[-3000:]}")
run = tmp / "project" / "runs" / "latest"
ledger = json.loads((run / "ledger.json").read_text())
out["pipeline_wall_s"] = round(time.time() - t0, 1)
out["prices"] = ledger["prices"]
out["ledger"] = ledger_frame(run).round(6).to_dict(orient="records")

# 2. teacher vs student: serving cost of 1,000 requests
prices = check_prices(ledger["prices"])
mix = recorded_requests(run / "features" / "table.parquet", n=200, candidates=100)
served = {}
for name, folder in (("teacher", run / "train" / "model"), ("student", run / "distill" / "model")):
    r = load_test(folder, mix, rate=20, duration_s=2 * args.seconds)
    served[name] = {**{k: r[k] for k in ("p50_ms", "p99_ms", "failed", "cpu_ms_per_request")},
                    "cost_per_1k_requests": r["cpu_ms_per_request"] * prices["cpu_hour"] / 3600}  # 1,000 x ms = s
served["teacher_over_student_cpu"] = served["teacher"]["cpu_ms_per_request"] / served["student"]["cpu_ms_per_request"]
out["serving_cost"] = served

# 3. the pressure test's verdicts, the student as champion
from loopkit.models.ctr import save_model
from loopkit.training.fit import fit
fitted = fit(run / "features" / "table.parquet", run / "features" / "spec.json", model="dcnv2", max_epochs=1,
             config={"embed_dim": 64, "hidden": (2048, 2048), "cross_layers": 6})
save_model(fitted.model, tmp / "wide")
verdicts = {}
for name, folder in (("student (same model)", run / "distill" / "model"), ("teacher", run / "train" / "model"), ("wide DCN-v2", tmp / "wide")):
    v = pressure_test(folder, run / "distill" / "model", mix, rate=20, slo_p99_ms=50, max_cpu_ratio=1.5, duration_s=args.seconds)
    verdicts[name] = {"verdict": v["verdict"], "cpu_ratio": v["cpu_ratio"], "p99_ms": v["challenger"]["p99_ms"], "reasons": v["reasons"]}
out["pressure"] = verdicts

# 4. the degradation curve of the wide model, with and without --degrade
def serve(extra):
    import socket
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    proc = subprocess.Popen([LOOPKIT, "serve", "--port", str(port), "--model-dir", tmp / "wide", "--log-dir", "", "--k", "10", *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200: return proc, url
        except httpx.HTTPError: time.sleep(0.5)
    proc.kill(); sys.exit("loopkit serve did not start")

small = recorded_requests(run / "features" / "table.parquet", n=200, candidates=50)
proc, url = serve([])
capacity = 1e3 / press(url, small, rate=5, duration_s=4)["p50_ms"]
proc.terminate(); proc.wait()
curve = []
for mode, extra in (("no degradation", []), ("--degrade", ["--degrade", "--latency-budget-ms", "100", "--max-queue", "4", "--recover-after", "2"])):
    proc, url = serve(extra)
    press(url, small, rate=5, duration_s=4)  # every item scored once: the popular list
    for x in (0.5, 1.0, 2.0, 3.0):
        r = press(url, small, rate=x * capacity, duration_s=args.seconds, workers=128, timeout_s=10)
        n = sum(r["levels"].values()) or 1
        curve.append({"mode": mode, "offered_x_capacity": x, "rate": round(r["rate"], 1), "p50_ms": round(r["p50_ms"], 1),
                      "p99_ms": round(r["p99_ms"], 1), "failed": r["failed"],
                      **{f"share_{lv}": round(r["levels"].get(lv, 0) / n, 3) for lv in ("normal", "popular")}})
        time.sleep(0.5)
        for _ in range(20):  # calm traffic until it is back to normal before the next rate
            if mode == "no degradation" or httpx.get(url + "/status").json()["degradation"]["name"] == "normal": break
            press(url, small, rate=3, duration_s=1)
    proc.terminate(); proc.wait()
out["capacity_rps"] = round(capacity, 1)
out["degradation_curve"] = curve
print(json.dumps(out, indent=1, default=lambda v: round(float(v), 4)))
