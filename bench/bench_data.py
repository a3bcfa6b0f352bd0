"""Throughput of the synthetic feed generator: `python bench/bench_data.py [--rows N] [--repeats R]`.

Times `synth_events(N)` (default 1M rows, 3 repeats, after one small warm-up call) and, side by side in the same run,
reading the same N rows back from a parquet file (the alternative a team would otherwise use: a stored log),
interleaved; prints a markdown table with rows/s and the ratio.
"""
import argparse, platform, statistics, tempfile, time
import os
from pathlib import Path
import pyarrow.parquet as pq
from loopkit.ingest.synth import synth_events
from loopkit.ingest.sources import write_events


def bench(rows=1_000_000, repeats=3, seed=0):
    "Seconds per call of `synth_events(rows)`, one entry per repeat."
    synth_events(10_000, seed=seed)  # warm-up: imports, allocator
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); table = synth_events(rows, seed=seed); times.append(time.perf_counter() - t)
        assert table.num_rows == rows
    return times


def bench_read(rows, repeats, seed=0):
    "Seconds per read of the same rows from a zstd parquet file (warm page cache)."
    path = Path(tempfile.mkdtemp())/'events.parquet'
    write_events(synth_events(rows, seed=seed), path)
    pq.read_table(path)
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); pq.read_table(path); times.append(time.perf_counter() - t)
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
    reads = bench_read(a.rows, a.repeats)
    rb, rm = min(reads), statistics.median(reads)
    print(f'| parquet read of the same rows | {a.rows:,} | {rb:.2f} | {rm:.2f} | {a.rows / rb:,.0f} | {a.rows / rm:,.0f} |')
    print(f'\ngenerating costs {med / rm:.1f}x a parquet read of the same rows (medians)')


if __name__ == '__main__': main()
