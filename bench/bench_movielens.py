"""Real-data check on MovieLens-100K with RecBole's context-aware protocol: `python bench/bench_movielens.py [--seeds 0 1 2]`.

RecBole's quick start for context-aware models (docs/source/get_started/started/context-aware.rst) trains LR on ml-100k
with `load_col` inter [user_id, item_id, rating, timestamp], user [user_id, age, gender, occupation], item [item_id,
release_year, class]; label `rating >= 4` (threshold, rating then dropped); random 80/10/10 split (RS, order RO);
embedding_size 10; batch 4096; early stopping on valid AUC. Its log lists the fields the model sees: user_id, item_id,
timestamp, age, gender, occupation, release_year, class (the genres). So LR here has the same fields: user_id, item_id,
age, gender, occupation and release_year as categorical (RecBole reads them as tokens), timestamp as a standardised
number, and the genres as 19 numeric columns, each 1/(number of the movie's genres) (RecBole mean-pools a token
sequence). RecBole reports LR test AUC 0.7765 / logloss 0.5620. This prints a markdown table of loopkit's LR, FM, DeepFM
and DCNv2 on the same protocol, one row per model and seed, plus the mean over seeds.
"""
import argparse, platform, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from loopkit.ingest.movielens import load_movielens
from loopkit.evaluation.metrics import auc, logloss
from loopkit.models.encoder import rows_of_split
from loopkit.training.fit import fit

ROOT = Path(__file__).resolve().parents[1]
RECBOLE_LR = {"auc": 0.7765, "logloss": 0.5620}
CATEGORICAL = ["user_id", "item_id", "age", "gender", "occupation", "release_year"]


def movielens_table(data:Path, seed:int) -> tuple[pd.DataFrame, dict]:
    "The RecBole protocol's features table: one row per rating, a random 80/10/10 split drawn with `seed`."
    events = load_movielens(data).to_pandas()
    genres = sorted({g for gs in events.genres for g in gs})
    n_genres = events.genres.map(len).clip(lower=1)
    table = events[["event_id", "ts", "user_id", "item_id", "click", "age", "gender", "occupation", "release_year"]].copy()
    for g in genres: table[f"genre_{g}"] = events.genres.map(lambda gs, g=g: g in gs).astype("float32") / n_genres
    table["timestamp"] = table.ts.astype("float64")
    order = np.random.default_rng(seed).permutation(len(table))
    split = np.empty(len(table), dtype=object)
    n_train, n_valid = int(0.8 * len(table)), int(0.1 * len(table))
    split[order[:n_train]], split[order[n_train:n_train + n_valid]], split[order[n_train + n_valid:]] = "train", "valid", "test"
    table["split"] = split
    spec = {"label": "click", "time": "ts", "user": "user_id", "item": "item_id", "categorical": CATEGORICAL,
            "numeric": ["timestamp"] + [f"genre_{g}" for g in genres], "feature_set_version": "recbole-ml-100k"}
    return table, spec


MODELS = {  # embedding size 10 (RecBole's embedding_size); batch 4096; lr and epochs are loopkit's choice
    "lr": dict(lr=0.01, config={}),
    "fm": dict(lr=0.005, config={"embed_dim": 10}),
    "deepfm": dict(lr=0.002, config={"embed_dim": 10, "hidden": [128, 64], "dropout": 0.2}),
    "dcnv2": dict(lr=0.002, config={"embed_dim": 10, "hidden": [128, 64], "dropout": 0.2, "cross_layers": 2}),
}


def run(data:Path, seeds:list[int], max_epochs:int, patience:int, models:list[str]):
    rows = []
    for seed in seeds:
        table, spec = movielens_table(data, seed)
        test = rows_of_split(table, "test")
        for name in models:
            start = time.perf_counter()
            result = fit(table, spec, model=name, max_epochs=max_epochs, batch_size=4096, seed=seed, patience=patience,
                         **MODELS[name])
            p = result.model.predict_frame(test)
            rows.append({"model": name, "seed": seed, "test_auc": auc(test.click, p), "test_logloss": logloss(test.click, p),
                         "valid_auc": result.metrics["valid_auc"], "best_epoch": result.best_epoch,
                         "epochs": len(result.history), "seconds": time.perf_counter() - start})
            print(f"  {name} seed {seed}: test AUC {rows[-1]['test_auc']:.4f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    return pd.DataFrame(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "ml-100k")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-epochs", type=int, default=60)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    res = run(a.data, a.seeds, a.max_epochs, a.patience, a.models)
    print(f"\nMovieLens-100K, RecBole context-aware protocol; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {a.threads} threads, seeds {a.seeds}\n")
    print("| model | seed | test AUC | test logloss | valid AUC | best epoch / run | seconds |\n|---|---|---|---|---|---|---|")
    print(f"| RecBole LR (reported) | - | {RECBOLE_LR['auc']:.4f} | {RECBOLE_LR['logloss']:.4f} | 0.7745 | 242 / 253 | - |")
    for r in res.itertuples():
        print(f"| loopkit {r.model} | {r.seed} | {r.test_auc:.4f} | {r.test_logloss:.4f} | {r.valid_auc:.4f} | {r.best_epoch} / {r.epochs} | {r.seconds:.0f} |")
    mean = res.groupby("model", sort=False)[["test_auc", "test_logloss", "valid_auc"]].agg(["mean", "std"])
    for model, m in mean.iterrows():
        print(f"| loopkit {model} | mean of {len(a.seeds)} | {m[('test_auc', 'mean')]:.4f} ± {m[('test_auc', 'std')]:.4f} | "
              f"{m[('test_logloss', 'mean')]:.4f} ± {m[('test_logloss', 'std')]:.4f} | {m[('valid_auc', 'mean')]:.4f} | | |")
    lr_auc = res[res.model == "lr"].test_auc.mean() if "lr" in a.models else None
    if lr_auc is not None:
        print(f"\nloopkit LR vs RecBole LR: {lr_auc - RECBOLE_LR['auc']:+.4f} AUC (band ±0.01: "
              f"{'inside' if abs(lr_auc - RECBOLE_LR['auc']) <= 0.01 else 'OUTSIDE'})")
        for deep in ("deepfm", "dcnv2"):
            if deep in a.models:
                print(f"loopkit {deep} vs loopkit LR: {res[res.model == deep].test_auc.mean() - lr_auc:+.4f} AUC")


if __name__ == "__main__":
    main()
