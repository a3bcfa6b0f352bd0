"""Throughput of the synthetic feed generator: `python bench/bench_data.py [--rows N] [--repeats R]`.

Times `synth_events(N)` (default 1M rows, 3 repeats, after one small warm-up call) and prints a markdown table row:
| benchmark | rows | best s | median s | best rows/s | median rows/s |
"""
import argparse, platform, statistics, time
import os
from loopkit.data import synth_events


def bench(rows=1_000_000, repeats=3, seed=0):
    "Seconds per call of `synth_events(rows)`, one entry per repeat."
    synth_events(10_000, seed=seed)  # warm-up: imports, allocator
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); table = synth_events(rows, seed=seed); times.append(time.perf_counter() - t)
        assert table.num_rows == rows
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rows', type=int, default=1_000_000)
    p.add_argument('--repeats', type=int, default=3)
    a = p.parse_args()
    times = bench(a.rows, a.repeats)
    best, med = min(times), statistics.median(times)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print('| benchmark | rows | best s | median s | best rows/s | median rows/s |')
    print('|---|---:|---:|---:|---:|---:|')
    print(f'| synth_events | {a.rows:,} | {best:.2f} | {med:.2f} | {a.rows / best:,.0f} | {a.rows / med:,.0f} |')


if __name__ == '__main__': main()
