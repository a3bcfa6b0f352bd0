"""Student vs teacher in one run: `python bench/bench_distill.py [--data synth movielens] [--events N]`.

For each data set: train a big teacher (DeepFM, wide field vectors and a large MLP, as a production ranker would be)
with `loopkit.training.fit.fit`; distill the default `mlp` student from it with `loopkit.training.distill.distill` (teacher scores
computed once); also train the same student on the labels alone for context. Then, on the test split:

- AUC of teacher, distilled student and label-only student; retention = student AUC / teacher AUC (goal >= 99.5 %);
- p99 latency to score one request of 100 candidates on 1 CPU thread under torch.inference_mode (`serving_cost`),
  teacher and student interleaved over several rounds, median of the rounds' p99 (goal: student >= 10x lower), by the
  wall clock and by the scoring thread's CPU clock (the machine is shared: preemption lands in the wall-clock tail);
- the hybrid router replayed over the test split (requests = a user's rows in time order, at most 100): share of
  requests sent to the teacher and AUC of hybrid vs student-only vs teacher-only, for cold-only routing and for
  cold + low-confidence routing;
- the cost-aware choice (`choose_model`, 2 % relative AUC loss) among teacher and students.

Data: synthetic = `loopkit.ingest.synth.synth_events` -> `loopkit.features.batch.build_table` (time split 70/10/20);
MovieLens-100K = RecBole's protocol table from bench/bench_movielens.py (random 80/10/10), skipped when absent.
Prints markdown tables.
"""
import argparse, platform, statistics, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from loopkit.ingest.synth import synth_events
from loopkit.features.batch import build_table
from loopkit.training.distill import distill, serving_cost, rank_candidates
from loopkit.serving.hybrid import HybridRouter, evaluate_router
from loopkit.evaluation.metrics import auc
from loopkit.models.encoder import read_features, rows_of_split
from loopkit.training.fit import fit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
TEACHER = {"embed_dim": 32, "hidden": [1024, 512, 256], "dropout": 0.2}


def synthetic(events:int, seed:int=0):
    d = Path(tempfile.mkdtemp())
    build_table(synth_events(events, seed=seed), d)
    return read_features(d / "table.parquet", d / "spec.json")


def movielens(path:Path):
    from bench_movielens import movielens_table
    return movielens_table(path, seed=0)


def latency(models:dict, rows, rounds:int, repeats:int) -> dict:
    "Median over interleaved rounds of each model's p50 / p99 (ms) for one request of 100 candidates, 1 thread, wall and CPU clocks."
    runs = {k: {"wall": [], "cpu": []} for k in models}
    for _ in range(rounds):
        for k, m in models.items():
            for clock in ("wall", "cpu"): runs[k][clock].append(serving_cost(m, rows, n_candidates=100, repeats=repeats, threads=1, clock=clock))
    out = {}
    for k, v in runs.items():
        out[k] = {f"{q}_{clock}": statistics.median(r[f"{q}_ms"] for r in v[clock]) for q in ("p50", "p99") for clock in ("wall", "cpu")}
        out[k].update(size_mb=v["wall"][0]["size_mb"], parameters=v["wall"][0]["parameters"])
    return out


def run(name, table, spec, a):
    print(f"\n## {name}: {len(table):,} rows, {len(spec['categorical'])} categorical + {len(spec['numeric'])} numeric fields", flush=True)
    test = rows_of_split(table, "test")
    y = test[spec["label"]].to_numpy()
    t0 = time.perf_counter()
    teacher = fit(table, spec, model="deepfm", max_epochs=a.teacher_epochs, batch_size=a.batch_size, lr=a.teacher_lr,
                  patience=2, seed=0, config=TEACHER, progress=False)
    print(f"  teacher: {len(teacher.history)} epochs, {time.perf_counter() - t0:.0f} s, valid AUC {teacher.metrics['valid_auc']:.4f}", flush=True)
    students, costs = {}, {}
    for label, cfg in a.students.items():
        t0 = time.perf_counter()
        students[f"mlp {label} distilled"] = distill(table, spec, teacher.model, alpha=a.alpha, temperature=a.temperature,
                                                      max_epochs=a.student_epochs, batch_size=a.batch_size, lr=a.student_lr,
                                                      patience=2, seed=0, config=cfg).model
        print(f"  student {label}: {time.perf_counter() - t0:.0f} s", flush=True)
    first = next(iter(a.students))
    students[f"mlp {first} labels only"] = fit(table, spec, model="mlp", max_epochs=a.student_epochs, batch_size=a.batch_size,
                                               lr=a.student_lr, patience=2, seed=0, config=a.students[first]).model
    models = {"teacher deepfm": teacher.model, **students}
    aucs = {k: auc(y, m.predict_frame(test)) for k, m in models.items()}
    cost = latency({k: m for k, m in models.items()}, test, a.rounds, a.repeats)
    t_auc, t = aucs["teacher deepfm"], cost["teacher deepfm"]
    print("\n| model | parameters | size MiB | test AUC | retention | p50 ms wall | p99 ms wall | p50 ms CPU | p99 ms CPU | teacher / this, p99 wall | teacher / this, p99 CPU |"
          "\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in models:
        c = cost[k]
        print(f"| {k} | {c['parameters']:,} | {c['size_mb']:.2f} | {aucs[k]:.4f} | {aucs[k] / t_auc:.2%} | {c['p50_wall']:.3f} | {c['p99_wall']:.3f} | "
              f"{c['p50_cpu']:.3f} | {c['p99_cpu']:.3f} | {t['p99_wall'] / c['p99_wall']:.1f}x | {t['p99_cpu'] / c['p99_cpu']:.1f}x |")
    cands = [{"name": k, "auc": aucs[k], "p99_ms": cost[k]["p99_cpu"], "size_mb": cost[k]["size_mb"]} for k in models if "labels only" not in k]
    ranked = rank_candidates(cands, max_loss=0.02)
    print(f"\ncost-aware choice (AUC within 2 % of the best, then cheapest p99): **{ranked.loc[ranked.chosen, 'name'].iloc[0]}**")

    student = models[f"mlp {first} distilled"]
    s_scores = student.predict_frame(test)
    routers = {"cold users/items": dict(cold=["user_id", "item_id"]),
               "cold + low confidence": dict(cold=["user_id", "item_id"], band=tuple(np.quantile(s_scores, [0.3, 0.7])), band_share=0.6)}
    print("\n| router | requests | share to teacher (requests) | share (rows) | decisions | AUC student | AUC hybrid | AUC teacher |\n|---|---:|---:|---:|---|---:|---:|---:|")
    for label, kw in routers.items():
        out = evaluate_router(HybridRouter(student, teacher.model, **kw), test, label=spec["label"], request_size=100)
        m = out["metrics"]
        print(f"| {label} | {m['requests']} | {m['share_to_teacher']:.1%} | {m['rows_share_to_teacher']:.1%} | {out['reasons']} | "
              f"{m['auc_student']:.4f} | {m['auc_hybrid']:.4f} | {m['auc_teacher']:.4f} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=["synth", "movielens"])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--movielens", type=Path, default=ROOT.parent / "shared" / "data" / "ml-100k")
    p.add_argument("--teacher-epochs", type=int, default=8)
    p.add_argument("--student-epochs", type=int, default=12)
    p.add_argument("--teacher-lr", type=float, default=0.001)
    p.add_argument("--student-lr", type=float, default=0.005)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--alpha", type=float, default=0.7)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--threads", type=int, default=2, help="torch threads for training (latency is always 1 thread)")
    a = p.parse_args()
    a.students = {"4x32": {"embed_dim": 4, "hidden": [32]}, "8x64": {"embed_dim": 8, "hidden": [64]}}
    torch.set_num_threads(a.threads)
    print(f"{platform.machine()}, torch {torch.__version__}; teacher DeepFM {TEACHER}; alpha {a.alpha}, T {a.temperature}")
    for d in a.data:
        if d == "synth": run(f"synthetic ({a.events:,} events)", *synthetic(a.events), a)
        elif d == "movielens":
            if not a.movielens.exists(): print(f"\nMovieLens-100K not found at {a.movielens}: skipped"); continue
            run("MovieLens-100K (RecBole protocol)", *movielens(a.movielens), a)


if __name__ == "__main__":
    main()
