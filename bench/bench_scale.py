"""The default pipeline as its input grows: wall seconds per stage and the peak memory of the run, in one invocation.

Each size runs `loopkit run -p ingest.n_events=N` in a fresh project (the built-in synthetic feed, the default
pipeline); the peak is the largest resident memory of the whole process tree (the runner and its kernels), sampled
every 0.2 s with psutil, and the stage holding the peak is named. Sizes run smallest first; growth per stage is read
as the ratio of seconds to the ratio of events.

Usage: .venv/bin/python bench/bench_scale.py [--sizes 50000 500000 5000000] [--param stage.name=value ...]
"""
import argparse, json, os, subprocess, sys, tempfile, threading, time
from pathlib import Path
import psutil

os.environ.setdefault('MLFLOW_DISABLE_TELEMETRY', 'true')
LOOPKIT = Path(sys.executable).parent/'loopkit'


def tree_rss(p: psutil.Process) -> int:
    total = 0
    for q in [p, *p.children(recursive=True)]:
        try: total += q.memory_info().rss
        except psutil.Error: pass
    return total


def run(n, params):
    work = Path(tempfile.mkdtemp(prefix=f'loopkit-scale-{n}-'))
    args = [str(LOOPKIT), 'run', '-p', f'ingest.n_events={n}', *sum((['-p', x] for x in params), []), '--json']
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, stage, current, stop = [0], [None], [None], threading.Event()
    def sample():
        me = psutil.Process(proc.pid)
        while not stop.is_set():
            try: rss = tree_rss(me)
            except psutil.Error: break
            if rss > peak[0]: peak[0], stage[0] = rss, current[0]
            time.sleep(0.2)
    def progress():  # "[i/n] mark stage: running" lines on stderr name the stage running
        for line in proc.stderr:
            err.append(line)
            parts = line.split()
            if len(parts) >= 4 and parts[0].startswith('[') and parts[3] == 'running': current[0] = parts[2].rstrip(':')
    err = []
    threads = [threading.Thread(target=sample, daemon=True), threading.Thread(target=progress, daemon=True)]
    for t in threads: t.start()
    out = proc.stdout.read(); proc.wait(); wall = time.perf_counter() - t0
    stop.set(); [t.join() for t in threads]
    if proc.returncode: sys.exit(f"n_events={n} failed (rc {proc.returncode}):\n{''.join(err)[-3000:]}")
    rec = json.loads(out.strip().splitlines()[-1])
    return wall, {s['name']: s['seconds'] for s in rec['stages']}, peak[0] / 2**30, stage[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sizes', type=int, nargs='+', default=[50_000, 500_000, 5_000_000])
    ap.add_argument('--param', action='append', default=[], help='a further -p STAGE.NAME=VALUE for every size')
    a = ap.parse_args()
    rows = []
    for n in a.sizes:
        rows.append((n, *run(n, a.param)))
        print(f"{n:,} events: {rows[-1][1]:.0f} s, peak {rows[-1][3]:.2f} GiB", file=sys.stderr, flush=True)
    stages = list(rows[0][2])
    print(f"\n| events | wall s | peak GiB (stage) | " + " | ".join(stages) + " |")
    print("|---:|---:|---:|" + "---:|" * len(stages))
    for n, wall, secs, peak, at in rows:
        print(f"| {n:,} | {wall:.0f} | {peak:.2f} ({at}) | " + " | ".join(f"{secs.get(s, 0):.1f}" for s in stages) + " |")
    base = rows[0]
    print("\ngrowth over the smallest size (seconds ratio / events ratio; 1.0 = linear):")
    for n, wall, secs, _, _ in rows[1:]:
        k = n / base[0]
        print(f"  {n:,}: wall {wall / base[1] / k:.2f}, " + ", ".join(
            f"{s} {secs.get(s, 0) / max(base[2].get(s, 0), 1e-9) / k:.2f}" for s in stages))


if __name__ == '__main__':
    main()
