"""DDP scaling on CPU and ZeRO memory per rank: `python bench/bench_distributed.py [--rows N] [--vocab V]`.

(a) DDP on CPU, gloo: one process (2 threads, and 1 thread) vs two processes (1 thread each, torchrun's default), the
same DeepFM, the same table, the same GLOBAL batch size and number of epochs, so the same total samples. Every run
goes through `loopkit.training.distributed.fit_distributed(strategy="ddp")`, so the single-process rows carry the same (trivial)
DDP wrapper. Throughput = training rows seen by all ranks / the slowest rank's training time (sum of its step phases;
setup and validation excluded). Phases are timed per step by Lightning hooks on every rank: data (handing out the
batch), forward, backward (under DDP it ends only when the gradient all-reduce, which overlaps it, has finished),
optimizer step; the all-reduce itself is timed by a DDP communication hook from launch to completion (it runs on gloo's
thread while backward computes, so it overlaps the backward column).

(b) ZeRO-1/2/3 vs plain DDP on 2 CPU ranks: the bytes of tensor storage each rank holds once all model states exist
(after the backward of the second step, before its optimizer step), each storage counted once, from the garbage
collector's live tensors minus those that existed before the model was built (the data): parameters, gradients,
optimizer state (Adam's moments), the optimizer's own fp32 copy of its parameters (DeepSpeed's partition), other
(communication buckets, flat buffers, the batch). A DeepFM with large
embedding tables so that parameters dominate. Compared with the ZeRO paper's predictions for mixed-precision Adam
(K=12): 1.6x / 1.78x / 2x smaller than data parallelism at Nd=2. Prints markdown tables.
"""
import argparse, os, platform, tempfile, time
import numpy as np, pandas as pd, torch
from loopkit.training.distributed import fit_distributed

MB = 1 / 2**20


def synthetic_table(rows:int, users:int, items:int, seed:int=0) -> tuple[pd.DataFrame, dict]:
    "Clicks from user and item effects; 80% train, 20% valid."
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, users, rows), rng.integers(0, items, rows)
    x = rng.normal(0, 1, (rows, 2))
    logit = rng.normal(0, 1, users)[u] + rng.normal(0, 1, items)[i] + x[:, 0] - 1
    table = pd.DataFrame({"user_id": u, "item_id": i, "x0": x[:, 0], "x1": x[:, 1],
                          "click": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int8")})
    table["split"] = np.where(np.arange(rows) < 0.8 * rows, "train", "valid")
    return table, {"label": "click", "categorical": ["user_id", "item_id"], "numeric": ["x0", "x1"]}


def scaling(rows:int, batch_size:int, epochs:int, repeats:int):
    table, spec = synthetic_table(rows, 20_000, 5_000)
    settings = dict(model="deepfm", config={"embed_dim": 16, "hidden": [128, 64]}, max_epochs=epochs, patience=epochs,
                    batch_size=batch_size, lr=0.01, seed=0)
    configs = [("1 process x 2 threads", 1, "2"), ("1 process x 1 thread", 1, "1"), ("2 gloo processes x 1 thread", 2, "1")]
    runs = {label: [] for label, _, _ in configs}
    for _ in range(repeats):  # interleaved, so that the machine's load falls on every configuration alike
        for label, devices, threads in configs:
            old = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = threads
            try: runs[label].append(fit_distributed(table, spec, strategy="ddp", devices=devices, **settings))
            finally:
                if old is None: os.environ.pop("OMP_NUM_THREADS")
                else: os.environ["OMP_NUM_THREADS"] = old
    print(f"\n### (a) DDP on CPU: DeepFM (embed 16, MLP 128-64), {int(0.8 * rows)} training rows x {epochs} epoch(s), "
          f"global batch {batch_size}, median of {repeats} interleaved runs\n")
    print("| run | threads/rank | samples/s | vs 1 process x 2 threads | train s | data s | forward s | backward s (incl. all-reduce wait) | optimizer s | all-reduce s (overlapped) | valid AUC |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    base = None
    for label, results in runs.items():
        def train_s(r): return max(sum(x["phase_seconds"].values()) for x in r.ranks)
        r = sorted(results, key=train_s)[len(results) // 2]  # the median run
        sps = sum(x["samples"] for x in r.ranks) / train_s(r)
        base = base or sps
        p = r.ranks[0]["phase_seconds"]  # rank 0; the ranks' times agree within noise
        print(f"| {label} | {r.ranks[0]['torch_threads']} | {sps:,.0f} | {sps / base:.2f}x | {train_s(r):.2f} | {p['data']:.2f} | "
              f"{p['forward']:.2f} | {p['backward']:.2f} | {p['optimizer']:.2f} | {r.ranks[0]['allreduce_seconds']:.2f} | "
              f"{r.metrics['valid_auc']:.4f} |")
    n_params = sum(p.numel() for p in runs["1 process x 1 thread"][0].model.parameters())
    print(f"\nGradient all-reduced per step: {n_params:,} fp32 values ({n_params * 4 * MB:.1f} MiB, dense embedding gradients).")


PAPER = {"ddp": 16, "deepspeed_stage_1": 4 + 12 / 2, "deepspeed_stage_2": 2 + 14 / 2, "deepspeed_stage_3": 16 / 2}
# fp32 with a torch Adam: parameters and gradients 4 bytes each, Adam 8, and DeepSpeed's fp32 copy of each partition 4
# (kept even when the parameters are fp32), so K = 12 as in the paper but parameters and gradients count 4, not 2.
FP32 = {"ddp": 4 + 4 + 8, "deepspeed_stage_1": 4 + 4 + 12 / 2, "deepspeed_stage_2": 4 + 16 / 2, "deepspeed_stage_3": 20 / 2}


def zero_memory(rows:int, vocab:int, batch_size:int):
    table, spec = synthetic_table(rows, vocab, vocab // 4)
    settings = dict(model="deepfm", config={"embed_dim": 16, "hidden": [64, 32]}, max_epochs=1, patience=1,
                    batch_size=batch_size, lr=0.01, seed=0)
    runs = {s: fit_distributed(table, spec, strategy=s, devices=2, **settings) for s in PAPER}
    psi = sum(p.numel() for p in runs["ddp"].model.parameters())
    print(f"\n### (b) Per-rank memory of model states on 2 CPU ranks: DeepFM, {psi:,} parameters "
          f"(Psi; {psi * 4 * MB:.1f} MiB in fp32), fp32 training, torch Adam\n")
    print("| strategy | rank | parameters MiB | gradients MiB | optimizer state MiB | optimizer's fp32 copy MiB | other MiB | total MiB | bytes/Psi | DDP / this | DDP / this, model states only | fp32 prediction | paper (mixed precision) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ddp_total = np.mean([r["memory_bytes"]["total"] for r in runs["ddp"].ranks])
    def states(m): return m["total"] - m["other"]
    ddp_states = np.mean([states(r["memory_bytes"]) for r in runs["ddp"].ranks])
    for s, res in runs.items():
        for r in res.ranks:
            m = r["memory_bytes"]
            print(f"| {s} | {r['rank']} | {m['parameters'] * MB:.1f} | {m['gradients'] * MB:.1f} | {m['optimizer_state'] * MB:.1f} | "
                  f"{m['optimizer_copy'] * MB:.1f} | {m['other'] * MB:.1f} | {m['total'] * MB:.1f} | {m['total'] / psi:.2f} | {ddp_total / m['total']:.2f}x | {ddp_states / states(m):.2f}x | "
                  f"{FP32['ddp'] / FP32[s]:.2f}x | {PAPER['ddp'] / PAPER[s]:.2f}x |")
    print("\nLargest 'other' storages on rank 0 (bytes, dtype, shape of one view):")
    for s, res in runs.items(): print(f"- {s}: {res.ranks[0]['memory_bytes']['largest_other'][:3]}")
    print("\nvalid AUC: " + ", ".join(f"{s} {r.metrics['valid_auc']:.4f}" for s, r in runs.items()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the scaling table (80%% train)")
    ap.add_argument("--batch-size", type=int, default=1024, help="global batch of the scaling runs")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs of each scaling configuration (median shown)")
    ap.add_argument("--vocab", type=int, default=200_000, help="user ids of the memory table (items: a quarter)")
    ap.add_argument("--memory-rows", type=int, default=300_000, help="rows of the memory table")
    ap.add_argument("--only", choices=["scaling", "memory"], default=None)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    if args.only in (None, "scaling"): scaling(args.rows, args.batch_size, args.epochs, args.repeats)
    if args.only in (None, "memory"): zero_memory(args.memory_rows, args.vocab, 8192)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
