"""Serving latency, maximum sustained rate, and hot reload under load, against a real uvicorn server on loopback.

    .venv/bin/python bench/bench_serve.py --rate 200 --seconds 20 --candidates 100

1. fixed rate: open-loop requests from 8 threads with keep-alive connections (100 candidates each, online features included) at --rate req/s for --seconds; latency is
   measured from each request's *scheduled* send time, so a server that falls behind is charged for the queue;
2. maximum sustained rate: closed loop with --concurrency clients for --seconds; completed requests per second;
3. hot reload: a temporary SQLite MLflow registry with --reloads + 1 versions; under load at --reload-rate req/s the champion
   alias moves --reloads times, each followed by POST /admin/reload; reload time and failed requests.
"""
import argparse, asyncio, json, os, queue, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

import httpx
import numpy as np

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
KEY = "bench-serve-hmac-key-0123456789"
ADMIN = "bench-admin-token-0123456789"


def prepare(work:Path, n_events:int, model:str):
    "Events (tokenized) for warming the features, a features table and a trained model; the request pool."
    from loopkit.ingest.synth import synth_events
    from loopkit.features.batch import build_table
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.training.fit import fit
    import pyarrow.parquet as pq
    raw = synth_events(n_events, days=7, seed=0)
    events = pseudonymize_events(raw, KEY.encode())
    pq.write_table(events, work / "events.parquet")
    spec = build_table(events, work / "features")
    fit(work / "features" / "table.parquet", spec, model=model, max_epochs=1).save(work / "model")
    items = raw.select(["item_id", "category", "publish_ts"]).to_pandas().drop_duplicates("item_id")
    users = raw.select(["user_id", "age_band", "region", "device"]).to_pandas().drop_duplicates("user_id")
    return spec, items, users


def start_server(port:int, args:list, env:dict) -> subprocess.Popen:
    code = f"import sys; from loopkit.serving.http import main; sys.exit(main({args!r}))"
    p = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200: return p
        except httpx.HTTPError: pass
        if p.poll() is not None: raise RuntimeError(f"server exited: {p.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    p.kill(); raise RuntimeError("server did not start within 120 s")


def server_hist(url) -> dict:
    "Cumulative counts of the server's latency histogram, by upper bound (seconds, as text)."
    out = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("loopkit_request_latency_seconds_bucket"):
            out[line.split('le="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    return out


def make_bodies(items, users, n_candidates:int, n:int, seed=0) -> list:
    rng = np.random.default_rng(seed)
    bodies = []
    for _ in range(n):
        u = users.iloc[int(rng.integers(len(users)))]
        c = items.iloc[rng.choice(len(items), n_candidates, replace=False)]
        bodies.append({"user": int(u.user_id), "context": {"age_band": u.age_band, "region": u.region, "device": u.device},
                       "candidates": [{"item_id": int(i), "category": cat, "publish_ts": int(p)} for i, cat, p in zip(c.item_id, c.category, c.publish_ts)]})
    return [json.dumps(b).encode() for b in bodies]


def open_loop(url, bodies, rate, seconds, on_response=None, workers=8):
    "Send at a fixed rate from `workers` threads with keep-alive connections; latency from the scheduled send time."
    jobs, lat, fails = queue.Queue(), [], []
    def work():
        with httpx.Client(base_url=url, timeout=30) as client:
            while (job := jobs.get()) is not None:
                body, due = job
                if (wait := due - time.perf_counter()) > 0: time.sleep(wait)
                try:
                    r = client.post("/rank", content=body, headers={"content-type": "application/json"})
                    if r.status_code != 200: fails.append(r.status_code)
                    elif on_response: on_response(r.json(), time.perf_counter())
                except httpx.HTTPError as e: fails.append(type(e).__name__)
                lat.append((time.perf_counter() - due) * 1e3)
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads: t.start()
    n, start = int(rate * seconds), time.perf_counter() + 0.1
    for i in range(n): jobs.put((bodies[i % len(bodies)], start + i / rate))
    for _ in threads: jobs.put(None)
    for t in threads: t.join()
    return np.array(lat), fails, n


async def closed_loop(url, bodies, concurrency, seconds):
    "As fast as `concurrency` clients go; returns (completed per second, latencies ms, failures)."
    lat, fails, stop = [], [], time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async def worker(w):
            i = w
            while time.perf_counter() < stop:
                t = time.perf_counter()
                r = await client.post("/rank", content=bodies[i % len(bodies)], headers={"content-type": "application/json"})
                lat.append((time.perf_counter() - t) * 1e3)
                if r.status_code != 200: fails.append(r.status_code)
                i += concurrency
        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return len(lat) / (time.perf_counter() - start), np.array(lat), fails


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--n-events", type=int, default=20000)
    ap.add_argument("--model", default="lr")
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--reload-rate", type=float, default=100)
    ap.add_argument("--port", type=int, default=8765)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    env = {"LOOPKIT_HMAC_KEY": KEY, "LOOPKIT_ADMIN_TOKEN": ADMIN, "PYTHONWARNINGS": "ignore"}
    results = {}
    try:
        t = time.time(); spec, items, users = prepare(work, a.n_events, a.model)
        print(f"prepared {a.n_events} events, {len(items)} items, {len(users)} users, model {a.model} in {time.time() - t:.1f} s", flush=True)
        bodies = make_bodies(items, users, a.candidates, 2000)
        url = f"http://127.0.0.1:{a.port}"
        # 1 + 2: a local model folder, features warmed with the events
        server = start_server(a.port, ["--port", str(a.port), "--model-dir", str(work / "model"), "--events", str(work / "events.parquet"),
                                       "--log-dir", str(work / "log"), "--poll-interval", "3600"], env)
        try:
            open_loop(url, bodies, 50, 2)  # warm up
            before = server_hist(url)
            lat, fails, sent = open_loop(url, bodies, a.rate, a.seconds)
            after = server_hist(url)
            within = {le: (after[le] - before[le]) / max(after["+Inf"] - before["+Inf"], 1) for le in after}
            results["fixed"] = dict(rate=a.rate, sent=sent, failed=len(fails), p50=float(np.percentile(lat, 50)),
                                    p99=float(np.percentile(lat, 99)), max=float(lat.max()),
                                    server_share_within_10ms=within["0.01"], server_share_within_25ms=within["0.025"])
            print(f"fixed rate {a.rate:g} req/s x {a.seconds:g} s, {a.candidates} candidates: p50 {results['fixed']['p50']:.2f} ms, "
                  f"p99 {results['fixed']['p99']:.2f} ms, max {results['fixed']['max']:.1f} ms, failed {len(fails)}/{sent}; server-side "
                  f"(in-process rank time): {within['0.01']:.2%} <= 10 ms, {within['0.025']:.2%} <= 25 ms", flush=True)
            rps, lat, fails = asyncio.run(closed_loop(url, bodies, a.concurrency, a.seconds))
            results["max"] = dict(rps=rps, p50=float(np.percentile(lat, 50)), p99=float(np.percentile(lat, 99)), failed=len(fails))
            print(f"max sustained (closed loop, {a.concurrency} clients): {rps:.0f} req/s, p50 {results['max']['p50']:.2f} ms, "
                  f"p99 {results['max']['p99']:.2f} ms, failed {len(fails)}", flush=True)
        finally:
            server.terminate(); server.wait(30)
        # 3: registry with reloads + 1 versions, champion moved under load
        from mlflow import MlflowClient
        from loopkit.registry import register
        uri = f"sqlite:///{work}/mlflow.db"
        t = time.time()
        versions = [register(work / "model", {"auc": 0.5}, name="bench-ctr", tracking_uri=uri)["version"] for _ in range(a.reloads + 1)]
        client = MlflowClient(uri, uri); client.set_registered_model_alias("bench-ctr", "champion", str(versions[0]))
        print(f"registered {len(versions)} versions in {time.time() - t:.1f} s", flush=True)
        server = start_server(a.port, ["--port", str(a.port), "--registry-uri", uri, "--model-name", "bench-ctr", "--cache-dir", str(work / "cache"),
                                       "--events", str(work / "events.parquet"), "--log-dir", str(work / "log2"), "--poll-interval", "3600"], env)
        try:
            seen = {}  # version -> first time a response carried it
            def on_response(body, now): seen.setdefault(body["model_version"], now)
            async def run():
                load = asyncio.create_task(asyncio.to_thread(open_loop, url, bodies, a.reload_rate, 2 + 1.5 * a.reloads, on_response))
                reloads = []
                async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as admin:
                    await asyncio.sleep(1)
                    for v in versions[1:]:
                        moved = time.perf_counter()
                        await asyncio.to_thread(client.set_registered_model_alias, "bench-ctr", "champion", str(v))
                        r = (await admin.post("/admin/reload")).json()
                        assert r["changed"] == {"champion": str(v)}, r
                        reloads.append((moved, time.perf_counter() - moved, r["seconds"], str(v)))
                        await asyncio.sleep(1.5 - min(1.4, time.perf_counter() - moved))
                return await load, reloads
            (lat, fails, sent), reloads = asyncio.run(run())
            to_first = [seen[v] - moved for moved, _, _, v in reloads if v in seen]
            results["reload"] = dict(changes=len(reloads), server_reload_s_max=max(r[2] for r in reloads),
                                     server_reload_s_mean=float(np.mean([r[2] for r in reloads])),
                                     alias_to_first_response_s_max=max(to_first), failed=len(fails), sent=sent,
                                     p99=float(np.percentile(lat, 99)))
            rr = results["reload"]
            print(f"hot reload x{rr['changes']} at {a.reload_rate:g} req/s: server reload (download + load + probe + swap) mean "
                  f"{rr['server_reload_s_mean']:.3f} s, max {rr['server_reload_s_max']:.3f} s; alias move -> first response from the new "
                  f"version max {rr['alias_to_first_response_s_max']:.3f} s; failed {rr['failed']}/{rr['sent']}; p99 during reloads {rr['p99']:.1f} ms",
                  flush=True)
        finally:
            server.terminate(); server.wait(30)
        print(json.dumps(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
