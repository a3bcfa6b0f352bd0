"""PSI and drift-alert latency: `python bench/bench_monitor.py [--rows N] [--cols C] [--repeats R]`.

1. PSI of C numeric columns, N reference rows vs N current rows (default 1M x 50), in the same run:
   - loopkit: `psi(frozen, current)` on bins frozen once by `freeze_reference` (the freeze is timed apart);
   - Evidently 0.7 `DataDriftPreset(method="psi")` on the same raw data (Evidently's own bins: Sturges over both samples);
   - Evidently's preset on loopkit's buckets (each column given as its bucket codes, categorical): the same bins, so the
     values must be equal; this is the comparison of values;
   - a plain pandas computation on the same bins (pd.cut + value_counts per column), the reference the tests use.
2. Drift alert latency: a DriftMonitor over the same 50 columns reads batches of 20,000 rows per 5 minutes of event time;
   a shift starts at a known batch; latency = wall-clock from the arrival of the batch that completes the sustained
   window to the alert (on_alert called). Also the per-batch observe time.
Prints markdown tables.
"""
import argparse, os, platform, statistics, time
os.environ.setdefault("DO_NOT_TRACK", "1")
import numpy as np
import pandas as pd
from loopkit.monitoring.monitor import DriftMonitor
from loopkit.monitoring.psi import _bucket_codes, _evidently, freeze_reference, psi


def data(n, c, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    cols = {}
    for j in range(c):
        kind = j % 5
        if kind == 0: x = rng.normal(shift, 1, n)
        elif kind == 1: x = rng.gamma(2 + shift, 2, n)
        elif kind == 2: x = rng.lognormal(shift, 1, n)
        elif kind == 3: x = rng.poisson(3 + 2 * shift, n).astype(np.float64)      # ties: fewer bins
        else: x = np.where(rng.random(n) < 0.7, 0.0, rng.exponential(1 + shift, n))  # zero-inflated
        cols[f"f{j:02d}"] = x * (1 + 0.05 * (j // 5))
    return pd.DataFrame(cols)


def timed(f, repeats):
    out, ts = None, []
    for _ in range(repeats):
        t = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t)
    return out, min(ts), statistics.median(ts)


def evidently_psi(ref, cur, categorical):
    DataDefinition, Dataset, Report, DataDriftPreset = _evidently()
    dd = DataDefinition(categorical_columns=list(ref.columns)) if categorical else DataDefinition(numerical_columns=list(ref.columns))
    snap = Report([DataDriftPreset(method="psi")]).run(Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd))
    return pd.Series({m["config"]["column"]: float(m["value"]) for m in snap.dict()["metrics"]
                      if m["config"].get("type", "").endswith("ValueDrift")})


def pandas_psi(ref_df, cur_df, frozen, floor=1e-4):
    out = {}
    for c in frozen.columns:
        edges = [-np.inf, *c["edges"], np.inf]
        r = pd.cut(ref_df[c["name"]], edges, labels=False).value_counts(normalize=True)
        k = pd.cut(cur_df[c["name"]], edges, labels=False).value_counts(normalize=True)
        keys = r.index.union(k.index); r, k = r.reindex(keys).fillna(floor), k.reindex(keys).fillna(floor)
        out[c["name"]] = float(((k - r) * np.log(k / r)).sum())
    return pd.Series(out)


def bench_psi(n, c, repeats):
    ref, cur = data(n, c, 0), data(n, c, 1, shift=0.1)
    frozen, t_freeze, _ = timed(lambda: freeze_reference(ref, bins=10), 1)   # includes numba's compile on a cold cache
    _, t_freeze, _ = timed(lambda: freeze_reference(ref, bins=10), 1)
    ours, best, med = timed(lambda: psi(frozen, cur), repeats)
    slow, t_pandas, _ = timed(lambda: pandas_psi(ref, cur, frozen), 1)
    codes = lambda df: pd.DataFrame({col["name"]: _bucket_codes(col, df, "bench") for col in frozen.columns})
    (rc, cc), t_codes, _ = timed(lambda: (codes(ref), codes(cur)), 1)
    same_bins, t_ev_same, _ = timed(lambda: evidently_psi(rc, cc, categorical=True), 1)
    own_bins, t_ev_raw, _ = timed(lambda: evidently_psi(ref, cur, categorical=False), 1)
    same_bins, own_bins = same_bins.reindex(ours.index), own_bins.reindex(ours.index)
    print(f"\n### PSI, {n:,} reference rows vs {n:,} current rows x {c} numeric columns "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})\n")
    print("| computation | bins | seconds | loopkit speed-up |\n|---|---|---:|---:|")
    print(f"| loopkit `psi` (score step; best / median of {repeats}) | frozen reference quantiles | {best:.3f} / {med:.3f} | 1x |")
    print(f"| Evidently `DataDriftPreset(method='psi')` on the raw columns | Evidently's (Sturges, both samples) | {t_ev_raw:.2f} | {t_ev_raw / best:.0f}x |")
    print(f"| Evidently `DataDriftPreset(method='psi')` on loopkit's bucket codes | the same | {t_ev_same:.2f} (+{t_codes:.2f} to bin) | {t_ev_same / best:.0f}x |")
    print(f"| pandas `pd.cut` + `value_counts` per column | the same | {t_pandas:.2f} | {t_pandas / best:.0f}x |")
    print(f"| loopkit `freeze_reference` (fit step, once per model version) | - | {t_freeze:.3f} | |")
    print(f"\nmax |loopkit - Evidently| on the same bins: {np.abs(ours - same_bins).max():.2e}; "
          f"max |loopkit - pandas|: {np.abs(ours - slow).max():.2e}; "
          f"max |loopkit - Evidently on its own bins|: {np.abs(ours - own_bins).max():.3f} "
          f"(mean PSI loopkit {ours.mean():.4f}, Evidently own bins {own_bins.mean():.4f})")
    return frozen


def bench_latency(frozen, c, batch_rows=20_000, step=300, shift_batch=40, sustain=1800):
    seen = []
    mon = DriftMonitor(frozen, threshold=0.1, sustain=sustain, window=step * 2, min_rows=5000, on_alert=lambda a: seen.append(time.perf_counter()))
    t0 = 1_767_225_600; times, latency = [], None
    for b in range(shift_batch + sustain // step + 6):
        df = data(batch_rows, c, 100 + b, shift=0.5 if b >= shift_batch else 0.0)
        df["ts"] = t0 + b * step + np.sort(np.random.default_rng(b).integers(0, step, batch_rows))
        arrived = time.perf_counter()
        alert = mon.observe(df, now=t0 + (b + 1) * step - 1)
        times.append(time.perf_counter() - arrived)
        if alert is not None and latency is None:
            latency, at_batch, n_feat = seen[0] - arrived, b, len(alert.features)
    print(f"\n### Drift alert latency ({c} columns, {batch_rows:,} rows per {step // 60}-minute batch, sustain {sustain // 60} min)\n")
    print("| shift at batch | alert at batch | columns in the alert | batch arrival -> alert, s | observe per batch, median / max s |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {shift_batch} | {at_batch} | {n_feat} | {latency:.4f} | {statistics.median(times):.4f} / {max(times[1:]):.4f} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000); ap.add_argument("--cols", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    frozen = bench_psi(a.rows, a.cols, a.repeats)
    bench_latency(frozen, a.cols)
