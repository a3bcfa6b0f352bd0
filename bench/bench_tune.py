"""Search efficiency of `loopkit.tune`: `python bench/bench_tune.py [--events N] [--trials T] [--epochs E] [--seeds S]`.

TPE + Hyperband pruning vs random search without pruning, the same budget of trials and the same search space, on a
synthetic feature table (`synth_events` + `build_table`), for several seeds, side by side in one run. For each seed,
random search's best validation AUC is the target; the figure is the number of epochs each search trained (all
trials, in order, counting every epoch of every trial, pruned ones included) until some trial first reached that
AUC after one of its epochs. Prints a markdown table per seed and the totals. Goal: TPE + pruning needs <= 1/3 of
the epochs random search spends.
"""
import argparse, os, platform, tempfile, time
import optuna
import pandas as pd
import torch
from loopkit.data import synth_events
from loopkit.features import build_table
from loopkit.tune import tune

SPACE = {"model": {"type": "categorical", "choices": ["lr", "fm"]},
         "lr": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
         "embed_dim": {"type": "int", "low": 2, "high": 32, "log": True},
         "weight_decay": {"type": "float", "low": 1e-8, "high": 1e-2, "log": True},
         "batch_size": {"type": "categorical", "choices": [256, 512, 1024, 2048]}}


def epochs_until(study, target, eps=1e-6):
    "Epochs trained, trial after trial in order, until an epoch's validation AUC first reached `target` (None: never)."
    spent = 0  # eps: per-epoch AUCs reach the trials as float32 (Lightning's logged metrics), trial values are float64
    for t in sorted(study.trials, key=lambda t: t.number):
        for step, value in sorted(t.intermediate_values.items()):
            spent += 1
            if value >= target - eps: return spent
    return None


def total_epochs(study): return sum(len(t.intermediate_values) for t in study.trials)


def run(table, spec, trials, epochs, seed):
    "One seed: random search without pruning, then TPE with Hyperband; their figures as a dict."
    out, t0 = {"seed": seed}, time.perf_counter()
    # random search draws its own points (a seed apart from TPE's, whose start-up trials are random draws too)
    rnd = tune(table, spec, SPACE, n_trials=trials, max_epochs=epochs, seed=seed, pruner="none", progress=False,
               sampler=optuna.samplers.RandomSampler(seed=10_000 + seed))
    out["random s"] = time.perf_counter() - t0
    target = rnd.best_value
    t0 = time.perf_counter()
    tpe = tune(table, spec, SPACE, n_trials=trials, max_epochs=epochs, seed=seed, sampler="tpe", pruner="hyperband", progress=False)
    out["tpe s"] = time.perf_counter() - t0
    reached = epochs_until(tpe.study, target)
    out.update({"random best AUC": target, "random epochs (all)": total_epochs(rnd.study),
                "random epochs to its best": epochs_until(rnd.study, target),
                "TPE+HB best AUC": tpe.best_value, "TPE+HB epochs (all)": total_epochs(tpe.study),
                "TPE+HB pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in tpe.study.trials),
                "TPE+HB epochs to random's best": reached})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--events', type=int, default=30_000, help="synthetic impressions in the feature table")
    p.add_argument('--trials', type=int, default=30, help="trials per search (the same budget for both)")
    p.add_argument('--epochs', type=int, default=9, help="max epochs of a trial (Hyperband's max resource)")
    p.add_argument('--seeds', type=int, default=3, help="seeds 0..S-1 (sampler and training)")
    a = p.parse_args()
    for k in ("MLFLOW_TRACKING_URI", "LOOPKIT_MLFLOW_RUN_ID"): os.environ.pop(k, None)  # a benchmark logs no runs
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    d = tempfile.mkdtemp()
    spec = build_table(synth_events(a.events, seed=0), out_dir=d)
    table = pd.read_parquet(f"{d}/table.parquet")
    print(f"# Search efficiency: {a.events:,} synthetic events ({(table.split == 'train').sum():,} train rows), {a.trials} trials, "
          f"max {a.epochs} epochs, {a.seeds} seeds; {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}\n")
    cols = ["seed", "random best AUC", "random epochs (all)", "random epochs to its best", "TPE+HB best AUC",
            "TPE+HB epochs (all)", "TPE+HB pruned", "TPE+HB epochs to random's best", "random s", "tpe s"]
    fmt = lambda v: "not reached" if v is None or (isinstance(v, float) and pd.isna(v)) else (f"{v:.4f}" if isinstance(v, float) and v < 1 else
                                                                                        f"{v:.1f}" if isinstance(v, float) else str(v))
    print("| " + " | ".join(cols) + " |\n|" + "---:|" * len(cols), flush=True)
    rows = []
    for seed in range(a.seeds):  # a row as soon as its seed is done
        rows.append(run(table, spec, a.trials, a.epochs, seed))
        print("| " + " | ".join(fmt(rows[-1][c]) for c in cols) + " |", flush=True)
    df = pd.DataFrame(rows)
    ok = df["TPE+HB epochs to random's best"].notna()
    tpe_sum = df.loc[ok, "TPE+HB epochs to random's best"].sum()
    print(f"\nTPE + Hyperband reached random search's best AUC in {ok.sum()} of {len(df)} seeds.")
    if ok.any():
        print(f"Epochs until then, over those seeds: TPE+HB {int(tpe_sum)} vs random search's whole budget "
              f"{int(df.loc[ok, 'random epochs (all)'].sum())} -> **{tpe_sum / df.loc[ok, 'random epochs (all)'].sum():.2f}x**; "
              f"vs random search's own epochs to its best {int(df.loc[ok, 'random epochs to its best'].sum())} -> "
              f"**{tpe_sum / df.loc[ok, 'random epochs to its best'].sum():.2f}x** (goal <= 0.33x)")
    print(f"Wall time: random {df['random s'].sum():.0f} s, TPE+HB {df['tpe s'].sum():.0f} s")


if __name__ == '__main__':
    main()
