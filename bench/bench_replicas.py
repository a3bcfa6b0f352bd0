"""Throughput of two `loopkit serve` replicas against one, side by side in one run, at p99 <= 10 ms.

    .venv/bin/python bench/bench_replicas.py [--seconds 8]

A registry with one small model (logistic regression over the default features), requests of 100 candidates each with
context, no log; online state either in each replica's memory (each warmed from the same 3,000 synthetic events) or in one
Redis both replicas share (warmed once). The load
comes from a separate process (so that the client's own work is not counted in the servers'): closed-loop HTTP clients,
each sending its next request when the last one is answered. For each setup the number of clients is raised (1, 2, 3,
4, 6, 8) and each level runs `--seconds`; the setup's figure is the highest throughput at which the p99 of the latency the
clients saw stays within 10 ms. With 2 replicas the clients alternate between the two ports (what a load balancer does), or
connect to the one port both replicas bind with --reuse-port (the kernel spreads connections; each client keeps its own).
"""
import argparse, json, multiprocessing as mp, os, shutil, socket, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOOPKIT = Path(sys.executable).parent / "loopkit"
KEY = "bench-replicas-hmac-key-0123456789"
CANDIDATES = [{"item_id": i, "category": ["news", "sports", "music", "comedy"][i % 4]} for i in range(100)]


def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def client(url, seconds, seed, out):
    "One closed-loop client: latencies (s) of every answered request for `seconds`."
    import httpx
    lat, errors, i = [], 0, 0
    with httpx.Client(base_url=url, timeout=10) as c:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            r = c.post("/rank", json={"user": f"user-{seed}-{i % 500}", "candidates": CANDIDATES,
                                      "context": {"device": "ios", "age_band": "25-34", "region": "north"}})
            if r.status_code == 200: lat.append(time.perf_counter() - t)
            else: errors += 1
            i += 1
    out.put((lat, errors))


def level(urls, clients, seconds):
    "Run `clients` closed-loop clients (in their own processes) over `urls` round robin; throughput and p99."
    q = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=client, args=(urls[i % len(urls)], seconds, i, q)) for i in range(clients)]
    for p in procs: p.start()
    got = [q.get() for _ in procs]
    for p in procs: p.join()
    lat = np.concatenate([np.array(l) for l, _ in got]) if got else np.array([])
    return dict(clients=clients, rps=round(len(lat) / seconds, 1), p50_ms=round(float(np.percentile(lat, 50)) * 1e3, 2),
                p99_ms=round(float(np.percentile(lat, 99)) * 1e3, 2), errors=sum(e for _, e in got))


def start(args, cwd, env, port=None):
    import httpx
    port = port or free_port()
    proc = subprocess.Popen([str(LOOPKIT), "serve", "--port", str(port), *map(str, args)], cwd=cwd, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200: return proc, url
        except httpx.HTTPError: time.sleep(0.5)
    raise RuntimeError("loopkit serve did not come up")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    a = ap.parse_args()
    from loopkit.features.batch import build_table
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.ingest.synth import synth_events
    from loopkit.models.ctr import save_model
    from loopkit.registry import register
    from loopkit.training.fit import fit
    import pyarrow.parquet as pq
    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    events = pseudonymize_events(synth_events(3000, n_items=100, days=2, seed=5), KEY.encode())
    pq.write_table(events, work / "events.parquet")
    spec = build_table(events, work / "features")
    save_model(fit(work / "features" / "table.parquet", spec, model="lr", max_epochs=1).model, work / "v1")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    register(work / "v1", {"auc": 0.7}, name="ctr", tracking_uri=uri)
    redis_port = free_port()
    redis = subprocess.Popen([shutil.which("redis-server"), "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    env = {"LOOPKIT_HMAC_KEY": KEY, "OMP_NUM_THREADS": "1"}
    results, procs = {}, []
    try:
        time.sleep(0.5)
        levels = (1, 2, 3, 4, 6, 8)
        for store in ("memory", "redis"):  # each replica's own state (each warmed), or one Redis both share (warmed once)
            state = "memory" if store == "memory" else f"redis://127.0.0.1:{redis_port}/0?prefix=bench-{time.time_ns()}:"
            common = ["--registry-uri", uri, "--model-name", "ctr", "--log-dir", "", "--k", "10", "--poll-interval", "3600", "--state", state]
            procs.append(start([*common, "--cache-dir", work / "c1", "--events", work / "events.parquet"], work, env))
            results[f"1 replica, {store} state"] = [level([procs[-1][1]], c, a.seconds) for c in levels]
            warm = ["--events", work / "events.parquet"] if store == "memory" else []
            procs.append(start([*common, "--cache-dir", work / "c2", *warm], work, env))
            results[f"2 replicas, {store} state"] = [level([procs[-2][1], procs[-1][1]], c, a.seconds) for c in levels]
            for p, _ in procs[-2:]: p.terminate(); p.wait(20)
        # two replicas behind one port (SO_REUSEPORT): the kernel spreads the clients' connections, no balancer in between
        port, common = free_port(), ["--registry-uri", uri, "--model-name", "ctr", "--log-dir", "", "--k", "10", "--poll-interval", "3600",
                                     "--state", "memory", "--reuse-port", "--events", work / "events.parquet"]
        procs.append(start([*common, "--cache-dir", work / "c1"], work, env, port))
        procs.append(start([*common, "--cache-dir", work / "c2"], work, env, port))
        results["2 replicas on one port, memory state"] = [level([procs[-1][1]], c, a.seconds) for c in levels]
        for p, _ in procs[-2:]: p.terminate(); p.wait(20)
    finally:
        for p, _ in procs: p.terminate(); p.wait(20)
        redis.terminate(); redis.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{os.cpu_count()} cores; 100 candidates a request; {a.seconds:g} s a level\n")
    print("| setup | clients | requests/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|---:|")
    best = {}
    for setup, rows in results.items():
        for r in rows:
            print(f"| {setup} | {r['clients']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} |")
        ok = [r for r in rows if r["p99_ms"] <= 10 and not r["errors"]]
        best[setup] = max(ok, key=lambda r: r["rps"]) if ok else None
    ratios = {}
    for store in ("memory", "redis"):
        b1, b2 = best[f"1 replica, {store} state"], best[f"2 replicas, {store} state"]
        ratios[store] = round(b2["rps"] / b1["rps"], 2) if b1 and b2 else None
        print(f"\n{store} state, at p99 <= 10 ms: 1 replica {b1 and b1['rps']} requests/s, 2 replicas {b2 and b2['rps']} requests/s, ratio {ratios[store]}")
    b1, b2 = best["1 replica, memory state"], best["2 replicas on one port, memory state"]
    ratios["one port"] = round(b2["rps"] / b1["rps"], 2) if b1 and b2 else None
    print(f"\none port (--reuse-port), at p99 <= 10 ms: 2 replicas {b2 and b2['rps']} requests/s, ratio to 1 replica {ratios['one port']}")
    print(json.dumps({"best": best, "ratios": ratios, "levels": results}))


if __name__ == "__main__":
    main()
