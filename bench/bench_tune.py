"""Search efficiency of `loopkit.training.search`: `python bench/bench_tune.py [--events N] [--trials T] [--epochs E] [--seeds S] [--pruners P ...]`.

TPE with pruning (Hyperband and successive halving, each its own search) vs random search without pruning, the same
budget of trials and the same search space, on a synthetic feature table (`synth_events`, screened of bots and
mis-clicks as the pipeline's validate stage does, then `build_table`), for several seeds, side by side in one run. The
space is what a feed team would search: the model among logistic regression, FM, DeepFM and DCNv2, the learning rate,
the embedding size, weight decay, dropout and the batch size; settings a model lacks are not drawn for it. TPE is
loopkit's default (`sampler="tpe"`: multivariate, grouped, random for the first third of the trials). For each seed,
random search's best validation AUC is the target; the figure is the number of epochs each search trained (all trials,
in order, counting every epoch of every trial, pruned ones included) until a trial that completed first reached that AUC
after one of its epochs (a pruned trial's AUC does not count: `tune` never returns its model). That is compared with
what random search spent: its whole search (what it costs to get its best: nobody knows it is the best before the budget
is spent), and, stricter, its epochs until it first reached its own best. Prints a markdown table per seed and the
totals. Goal: TPE + pruning needs <= 1/3 of the epochs.

A search's best validation AUC is the maximum of noisy values, so the bench also judges every configuration a search
would return (its best completed trial so far) by its mean validation and test AUC over `--retrain` other training
seeds, which takes the luck of one training run out of the comparison. The target is then random search's best
configuration judged so, and a search reaches it at the end of the first trial whose configuration, judged so, is as
good.
"""
import argparse, os, platform, tempfile, time
import optuna
import pandas as pd
import torch
from loopkit.ingest.synth import synth_events
from loopkit.evaluation.metrics import evaluate
from loopkit.features.batch import build_table
from loopkit.quality.screen import screen
from loopkit.training.fit import fit
from loopkit.training.search import tune, _fit_args  # _fit_args: how tune turns a trial's values into fit's arguments

SPACE = {"model": {"type": "categorical", "choices": ["lr", "fm", "deepfm", "dcnv2"]},
         "lr": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
         "embed_dim": {"type": "int", "low": 2, "high": 32, "log": True},
         "weight_decay": {"type": "float", "low": 1e-8, "high": 1e-2, "log": True},
         "dropout": {"type": "float", "low": 0.0, "high": 0.5},
         "batch_size": {"type": "categorical", "choices": [256, 512, 1024, 2048]}}


def epochs_until(study, target, eps=1e-6):
    "Epochs trained, trial after trial in order, until an epoch of a trial that completed first reached `target` (None: never)."
    spent = 0  # eps: per-epoch AUCs reach the trials as float32 (Lightning's logged metrics), trial values are float64
    for t in sorted(study.trials, key=lambda t: t.number):  # a pruned trial's epochs count as spent, but its AUC does not:
        done = t.state == optuna.trial.TrialState.COMPLETE   # tune returns the best completed trial's model, never a pruned one's
        for step, value in sorted(t.intermediate_values.items()):
            spent += 1
            if done and value >= target - eps: return spent
    return None


def total_epochs(study): return sum(len(t.intermediate_values) for t in study.trials)


class Judge:
    "The quality of a configuration without the luck of one training run: mean validation and test AUC over `n` other training seeds."
    def __init__(self, table, spec, epochs, n): self.table, self.spec, self.epochs, self.n, self.seen = table, spec, epochs, n, {}

    def __call__(self, params:dict) -> tuple[float, float]:
        key = tuple(sorted(params.items()))
        if key not in self.seen:
            values = dict(params)
            args = _fit_args(values.pop("model"), values, lr=None, batch_size=1024)  # tune's defaults; SPACE searches both
            again = [fit(self.table, self.spec, **args, max_epochs=self.epochs, seed=1000 + k) for k in range(self.n)]  # tune's patience
            self.seen[key] = (sum(r.metrics["valid_auc"] for r in again) / self.n,
                              sum(evaluate(r.model, self.table, self.spec, "test")["auc"] for r in again) / self.n)
        return self.seen[key]


def incumbents(study):
    "What `tune` would return if stopped after each trial that bettered it: (epochs spent by then, that trial's params)."
    spent, best, out = 0, None, []
    for t in sorted(study.trials, key=lambda t: t.number):
        spent += len(t.intermediate_values)
        if t.state == optuna.trial.TrialState.COMPLETE and (best is None or t.value > best):
            best = t.value; out.append((spent, t.params))
    return out


def judged_until(study, judge, target, eps=1e-6):
    "Epochs until the configuration `tune` would return first had a judged (retrained) validation AUC >= `target` (None: never)."
    return next((spent for spent, params in incumbents(study) if judge(params)[0] >= target - eps), None)


def run(table, spec, trials, epochs, seed, pruners, retrain):
    "One seed: random search without pruning, then TPE with each pruner; their figures as a dict."
    out, t0 = {"seed": seed}, time.perf_counter()
    # random search draws its own points (a seed apart from TPE's, whose start-up trials are random draws too)
    rnd = tune(table, spec, SPACE, n_trials=trials, max_epochs=epochs, seed=seed, pruner="none", progress=False,
               sampler=optuna.samplers.RandomSampler(seed=10_000 + seed))
    out["random s"] = time.perf_counter() - t0
    judge = Judge(table, spec, epochs, retrain) if retrain else None
    if judge:  # the de-noised target: the quality of random search's best configuration, and when random first returned one as good
        quality = judge(rnd.best_params)
        out.update({"random judged AUC": quality[0], "random judged test AUC": quality[1],
                    "random epochs to its judged best": judged_until(rnd.study, judge, quality[0])})
    target = rnd.best_value
    out.update({"random best AUC": target, "random epochs (all)": total_epochs(rnd.study),
                "random epochs to its best": epochs_until(rnd.study, target)})
    for pruner in pruners:
        t0 = time.perf_counter()
        tpe = tune(table, spec, SPACE, n_trials=trials, max_epochs=epochs, seed=seed, sampler="tpe", pruner=pruner, progress=False)
        out.update({f"{pruner} s": time.perf_counter() - t0, f"{pruner} best AUC": tpe.best_value,
                    f"{pruner} epochs (all)": total_epochs(tpe.study),
                    f"{pruner} pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in tpe.study.trials),
                    f"{pruner} epochs to random's best": epochs_until(tpe.study, target)})
        if judge:
            mine = judge(tpe.best_params)
            out.update({f"{pruner} judged AUC": mine[0], f"{pruner} judged test AUC": mine[1],
                        f"{pruner} epochs to random's judged best": judged_until(tpe.study, judge, quality[0])})
    return out


def header(cols) -> str:
    "A markdown table's header for these columns, the pruners by their short names."
    return "| " + " | ".join(c.replace("hyperband", "TPE+HB").replace("halving", "TPE+SH") for c in cols) + " |\n|" + "---:|" * len(cols)


def fmt(v) -> str:
    "A table cell: 'not reached', an AUC to 4 places, seconds to 1, a count as it is."
    if v is None or (isinstance(v, float) and pd.isna(v)): return "not reached"
    if isinstance(v, float): return f"{v:.4f}" if v < 1 else f"{v:.1f}"
    return str(v)


def line(row, cols) -> str: return "| " + " | ".join(fmt(row[c]) for c in cols) + " |"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--events', type=int, default=30_000, help="synthetic impressions in the feature table")
    p.add_argument('--trials', type=int, default=30, help="trials per search (the same budget for both)")
    p.add_argument('--epochs', type=int, default=9, help="max epochs of a trial (Hyperband's max resource)")
    p.add_argument('--seeds', type=int, default=8, help="seeds 0..S-1 (sampler and training)")
    p.add_argument('--pruners', nargs="+", default=["hyperband", "halving"], help="TPE searches to run, one per pruner")
    p.add_argument('--retrain', type=int, default=3, help="training seeds the best configuration of each search is retrained under (0: none)")
    a = p.parse_args()
    for k in ("MLFLOW_TRACKING_URI", "LOOPKIT_MLFLOW_RUN_ID"): os.environ.pop(k, None)  # a benchmark logs no runs
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    d = tempfile.mkdtemp()
    spec = build_table(screen(synth_events(a.events, seed=0)).kept, out_dir=d)  # bots and mis-clicks out, as the validate stage does
    table = pd.read_parquet(f"{d}/table.parquet")
    print(f"# Search efficiency: {a.events:,} synthetic events ({(table.split == 'train').sum():,} train rows, "
          f"{(table.split == 'valid').sum():,} valid), {a.trials} trials, max {a.epochs} epochs, {a.seeds} seeds; "
          f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}\n")
    cols = ["seed", "random best AUC", "random epochs (all)", "random epochs to its best"]
    for pr in a.pruners: cols += [f"{pr} best AUC", f"{pr} epochs (all)", f"{pr} pruned", f"{pr} epochs to random's best"]
    print(header(cols), flush=True)
    rows = []
    for seed in range(a.seeds):  # a row as soon as its seed is done
        rows.append(run(table, spec, a.trials, a.epochs, seed, a.pruners, a.retrain))
        print(line(rows[-1], cols), flush=True)
    df = pd.DataFrame(rows)
    print()
    for pr in a.pruners:
        got = df[f"{pr} epochs to random's best"]
        ok = got.notna()
        spent = got.fillna(df[f"{pr} epochs (all)"]).sum()  # a seed where it never got there counts its whole search
        print(f"- TPE + {pr}: reached random search's best AUC on {ok.sum()} of {len(df)} seeds. Epochs until then, over all "
              f"seeds (a seed not reached counts its whole search): {int(spent)} vs random search's whole searches "
              f"{int(df['random epochs (all)'].sum())} -> **{spent / df['random epochs (all)'].sum():.2f}x**; vs random search's "
              f"epochs to its own best {int(df['random epochs to its best'].sum())} -> **{spent / df['random epochs to its best'].sum():.2f}x** "
              f"(goal <= 0.33x); seeds where it took <= 1/3 of random's whole search: "
              f"{int((got <= df['random epochs (all)'] / 3).sum())} of {len(df)}")
    if a.retrain:
        print(f"\nThe same without one training run's luck: each configuration a search would return is judged by its mean AUC over "
              f"{a.retrain} other training seeds; the target is random search's best configuration judged so.\n")
        jc = ["seed", "random judged AUC", "random judged test AUC", "random epochs to its judged best"]
        for pr in a.pruners: jc += [f"{pr} judged AUC", f"{pr} judged test AUC", f"{pr} epochs to random's judged best"]
        print(header(jc))
        for r in rows: print(line(r, jc))
        print()
        for pr in a.pruners:
            got = df[f"{pr} epochs to random's judged best"]
            spent = got.fillna(df[f"{pr} epochs (all)"]).sum()
            print(f"- TPE + {pr}, judged: reached the quality of random search's best configuration on {got.notna().sum()} of {len(df)} seeds; "
                  f"epochs {int(spent)} vs random's whole searches -> **{spent / df['random epochs (all)'].sum():.2f}x**; vs random's epochs "
                  f"until it returned that configuration {int(df['random epochs to its judged best'].sum())} -> "
                  f"**{spent / df['random epochs to its judged best'].sum():.2f}x** (goal <= 0.33x); mean judged AUC "
                  f"{df[f'{pr} judged AUC'].mean():.4f} (test {df[f'{pr} judged test AUC'].mean():.4f}) vs random's "
                  f"{df['random judged AUC'].mean():.4f} (test {df['random judged test AUC'].mean():.4f})")
    print(f"\nWall time: random {df['random s'].sum():.0f} s, " + ", ".join(f"TPE+{pr} {df[f'{pr} s'].sum():.0f} s" for pr in a.pruners))


if __name__ == '__main__':
    main()
