"""The features table by DuckDB and by Spark (local mode) on the same events: wall seconds and peak memory, side by side.

For each size, synthetic events are written once; then each engine builds the default features table in a process of its
own (`build_table(..., engine=...)`), and the peak resident memory of that process and its children (Spark's JVM) is
sampled every 0.2 s with psutil. The two tables are checked equal (row count and every feature column's sum) before the
figures are printed.

Usage: .venv/bin/python bench/bench_spark.py [--sizes 1000000 10000000] [--driver-memory 8g]
"""
import argparse, json, os, subprocess, sys, tempfile, threading, time
from pathlib import Path
import psutil

BUILD = r'''
import sys, time, json
from loopkit.features.batch import build_table
t = time.perf_counter()
spec = build_table(sys.argv[1], sys.argv[2], engine=sys.argv[3])
print(json.dumps({"seconds": time.perf_counter() - t}))
'''


def measure(cmd, env):
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak, stop = [0], threading.Event()
    def sample():
        me = psutil.Process(proc.pid)
        while not stop.is_set():
            try: rss = sum(q.memory_info().rss for q in [me, *me.children(recursive=True)])
            except psutil.Error: rss = 0
            peak[0] = max(peak[0], rss); time.sleep(0.2)
    th = threading.Thread(target=sample, daemon=True); th.start()
    out, err = proc.communicate(); stop.set(); th.join()
    if proc.returncode: sys.exit(f"{' '.join(cmd[:3])} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])["seconds"], time.perf_counter() - t0, peak[0] / 2**30


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sizes', type=int, nargs='+', default=[1_000_000, 10_000_000])
    ap.add_argument('--driver-memory', default='8g')
    a = ap.parse_args()
    env = {**os.environ, 'LOOPKIT_SPARK_DRIVER_MEMORY': a.driver_memory, 'LOOPKIT_SPARK_MASTER': os.environ.get('LOOPKIT_SPARK_MASTER', 'local[*]')}
    work = Path(tempfile.mkdtemp(prefix='loopkit-spark-'))
    rows = []
    import duckdb, pyarrow.parquet as pq
    from loopkit.ingest.synth import synth_events
    for n in a.sizes:
        events = work / f'events-{n}.parquet'
        pq.write_table(synth_events(n, seed=0), events, row_group_size=1_000_000)
        res = {}
        for engine in ('duckdb', 'spark'):
            out = work / f'{engine}-{n}'
            res[engine] = measure([sys.executable, '-c', BUILD, str(events), str(out), engine], env)
            print(f"{n:,} events, {engine}: {res[engine][0]:.1f} s building, {res[engine][1]:.1f} s with start-up, peak {res[engine][2]:.2f} GiB", file=sys.stderr, flush=True)
        spec = json.loads((work / f'duckdb-{n}' / 'spec.json').read_text())
        sums = ", ".join(f'count(*)' if i == 0 else f'sum("{c}")' for i, c in enumerate(['n'] + spec['numeric']))
        a_, b_ = (duckdb.sql(f"SELECT {sums} FROM '{work / f'{e}-{n}' / 'table.parquet'}'").fetchall()[0] for e in ('duckdb', 'spark'))
        assert a_[0] == b_[0] and all(abs(x - y) <= 1e-6 * max(1, abs(x)) for x, y in zip(a_[1:], b_[1:])), (a_, b_)
        rows.append((n, res))
        for e in ('duckdb', 'spark'): (work / f'{e}-{n}' / 'table.parquet').unlink()
        events.unlink()
    print("\n| events | DuckDB s | DuckDB peak GiB | Spark local s (with JVM start) | Spark peak GiB (driver + JVM) | Spark / DuckDB time |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, r in rows:
        d, s = r['duckdb'], r['spark']
        print(f"| {n:,} | {d[0]:.1f} | {d[2]:.2f} | {s[0]:.1f} ({s[1]:.1f}) | {s[2]:.2f} | {s[0] / d[0]:.2f}x |")


if __name__ == '__main__':
    main()
