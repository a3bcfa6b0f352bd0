"""Runner figures for the foundation issue, side by side in one run (this machine is shared and noisy: read ratios).

1. Cached re-run of the whole default pipeline through the CLI: wall seconds and kernels started, next to the
   first (uncached) run of the same pipeline.
2. Per-stage overhead of the runner over a plain `papermill.execute_notebook` of the same template with the same
   parameters and the same kernel environment (an MLflow run of its own for the template to log into),
   interleaved (runner, papermill, runner, papermill, ...) and compared by median.

Usage: .venv/bin/python bench/bench_pipeline.py [--n-events 50000] [--repeats 3]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

os.environ.setdefault('MLFLOW_DISABLE_TELEMETRY', 'true')
ROOT = Path(__file__).resolve().parents[1]
LOOPKIT = Path(sys.executable).parent/'loopkit'


def cli(*args, cwd):
    t0 = time.perf_counter()
    p = subprocess.run([str(LOOPKIT), *args], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode: sys.exit(f"loopkit {' '.join(args)} failed:\n{p.stderr[-3000:]}")
    return wall, json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n-events', type=int, default=50_000)
    ap.add_argument('--repeats', type=int, default=3)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix='loopkit-bench-'))
    p = ['-p', f'ingest.n_events={a.n_events}', '--json', '-q']

    first, rec1 = cli('run', *p, cwd=work)
    cached = []
    for _ in range(a.repeats):
        wall, rec = cli('run', *p, cwd=work)
        assert all(s['status'] == 'cached' for s in rec['stages']), rec
        cached.append(wall)
    kernels = sum(s['status'] == 'ran' for s in rec['stages'])
    print(f"\n## Cached re-run of the default pipeline ({a.n_events:,} events)\n")
    print("| run | wall s | stages ran (kernels) |\n|---|---|---|")
    print(f"| first run | {first:.2f} | {sum(s['status'] == 'ran' for s in rec1['stages'])} |")
    print(f"| cached re-run (median of {a.repeats}) | {statistics.median(cached):.3f} | {kernels} |")

    # 2. per-stage overhead, in one process for both sides
    os.chdir(work)
    import papermill
    from loopkit.pipeline import load_pipeline, run_pipeline, _resolve
    pipe = load_pipeline()
    run_dir = work/'runs'/'latest'
    ours, plain = {s: [] for s in pipe.order}, {s: [] for s in pipe.order}
    from mlflow import MlflowClient
    uri = f"sqlite:///{work/'.loopkit'/'mlflow.db'}"
    client = MlflowClient(uri)
    exp_id = client.get_experiment_by_name('loopkit-default').experiment_id
    run_pipeline(pipe, run_dir, overrides={'ingest': {'n_events': a.n_events}}, force=['ingest'], progress=False)  # warm imports
    for _ in range(a.repeats):
        for s in pipe.order:
            t0 = time.perf_counter()
            r = run_pipeline(pipe, run_dir, overrides={'ingest': {'n_events': a.n_events}}, force=[s], progress=False)
            ran = [x for x in r.stages if x.status == 'ran']
            assert [x.name for x in ran][:1] == [s], r.stages
            ours[s].append(ran[0].seconds)
            params = _resolve({**pipe.stages[s].parameters, **({'n_events': a.n_events} if s == 'ingest' else {})}, run_dir, pipe)
            d = Path(tempfile.mkdtemp(dir=work))
            # the same environment the runner gives a kernel, with an MLflow run of its own, so that a template's own
            # MLflow work (tags, artifacts) happens on both sides and the ratio measures the runner alone
            plain_run = client.create_run(exp_id, run_name=f'plain {s}').info.run_id
            os.environ.update({'MLFLOW_TRACKING_URI': uri, 'LOOPKIT_MLFLOW_RUN_ID': plain_run, 'LOOPKIT_PROJECT_DIR': str(work),
                               'LOOPKIT_RUN_DIR': str(run_dir), 'LOOPKIT_STAGE': s})
            t0 = time.perf_counter()
            papermill.execute_notebook(str(pipe.stages[s].template), str(d/f'{s}.ipynb'), parameters=params, cwd=str(d),
                                       progress_bar=False, kernel_name='python3')
            plain[s].append(time.perf_counter() - t0)
            for k in ('MLFLOW_TRACKING_URI', 'LOOPKIT_MLFLOW_RUN_ID', 'LOOPKIT_PROJECT_DIR', 'LOOPKIT_RUN_DIR', 'LOOPKIT_STAGE'):
                os.environ.pop(k, None)
    print(f"\n## Per-stage overhead of the runner over plain papermill (median of {a.repeats}, interleaved)\n")
    print("| stage | loopkit s | papermill s | ratio |\n|---|---|---|---|")
    tot_o = tot_p = 0
    for s in pipe.order:
        o, q = statistics.median(ours[s]), statistics.median(plain[s]); tot_o += o; tot_p += q
        print(f"| {s} | {o:.2f} | {q:.2f} | {o / q:.3f}x |")
    print(f"| **all stages** | {tot_o:.2f} | {tot_p:.2f} | **{tot_o / tot_p:.3f}x** |")


if __name__ == '__main__':
    main()
