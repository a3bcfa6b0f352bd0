"""The default teacher and the served student against the baselines, on the synthetic feed and on MovieLens 100K, side by side.

    .venv/bin/python bench/bench_baselines.py --movielens ../shared/data/ml-100k

For each dataset: the events (the default pipeline's 50,000 synthetic impressions, or MovieLens 100K with `rating >= 4` as the
label), the features table with its time split (70 % train, 10 % valid, 20 % test, by time), then on the same test rows:
the four baselines of `loopkit.evaluation.baselines` (fit on train + valid), the default teacher (DeepFM, the pipeline's
settings: 10 epochs with early stopping, weight decay, dropout, calibration on valid), the student distilled from it (MLP,
as the distill stage), and the teacher as it was trained before regularisation and calibration were defaults (no weight
decay, no dropout, 2 epochs, uncalibrated). Each model's AUC and logloss, the best baseline's, and the lower end of the 95 %
paired bootstrap interval of the model's advantage over it (what the gate requires above 0).
"""
import argparse, json, tempfile, time, warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def dataset(name:str, movielens:str, work:Path):
    "The tokenized events of a dataset, and its features table."
    from loopkit.features.batch import build_table
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.ingest.synth import synth_events
    from loopkit.ingest.movielens import load_movielens
    events = synth_events(50_000, seed=0) if name == "synth" else load_movielens(movielens)
    spec = build_table(pseudonymize_events(events, b"bench-baselines-key-0123456789"), work / name)
    return work / name / "table.parquet", spec


def compare(table, spec, n_boot:int):
    "Rows of the comparison table for one dataset."
    import torch
    from loopkit.evaluation.baselines import baseline_scores, compare_to_baselines
    from loopkit.evaluation.metrics import predict_split
    from loopkit.models.encoder import read_features, rows_of_split
    from loopkit.training.distill import distill
    from loopkit.training.fit import fit
    torch.manual_seed(0)
    frame, spec = read_features(table, spec)
    test = rows_of_split(frame, "test")
    base = baseline_scores(frame, spec)
    t0 = time.perf_counter()
    teacher = fit(frame, spec, model="deepfm", max_epochs=10).model
    student = distill(frame, spec, teacher, student="mlp", max_epochs=10).model
    before = fit(frame, spec, model="deepfm", max_epochs=2, calibrate=False, config={"weight_decay": 0.0, "dropout": 0.0}).model
    seconds = time.perf_counter() - t0
    rows = []
    for name, model in (("teacher (DeepFM)", teacher), ("student (MLP, served)", student), ("teacher, earlier defaults", before)):
        scored = predict_split(model, frame, spec, "test")
        m = compare_to_baselines(scored["label"], scored["score"], base, user=test[spec["user"]].to_numpy(), n_boot=n_boot)
        best = max((k.split("/")[1] for k in m if k.endswith("/auc") and k.startswith("baselines/")), key=lambda n: m[f"baselines/{n}/auc"])
        from loopkit.evaluation.metrics import auc, logloss
        a, l = auc(scored["label"], scored["score"]), logloss(scored["label"], scored["score"])
        beats = all(m[k] > 0 for k in m if k.endswith("_low"))
        rows.append({"model": name, "auc": a, "logloss": l, "best baseline": best, "its auc": m[f"baselines/{best}/auc"],
                     "its logloss": m[f"baselines/{best}/logloss"], "auc gain (95 % low)": m.get(f"vs_baseline/{best}/auc_delta_low"),
                     "logloss gain (95 % low)": m[f"vs_baseline/{best}/logloss_gain_low"],
                     "beats every baseline": beats,
                     "lost to": ", ".join(sorted({k.split("/")[1] for k in m if k.endswith("_low") and m[k] <= 0})) or "-"})
    return rows, seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--movielens", default="../shared/data/ml-100k")
    ap.add_argument("--n-boot", type=int, default=200)
    a = ap.parse_args()
    work, out = Path(tempfile.mkdtemp()), []
    for name in ("synth", "movielens"):
        table, spec = dataset(name, a.movielens, work)
        rows, seconds = compare(table, spec, a.n_boot)
        for r in rows: out.append({"dataset": name, **r})
        print(f"{name}: trained in {seconds:.0f} s", flush=True)
    df = pd.DataFrame(out)
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(df.to_string(index=False))
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
