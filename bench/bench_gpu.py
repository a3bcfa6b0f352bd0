"""DeepFM on one GPU, in one prepared run of at most 8 minutes: NCCL DDP throughput, ZeRO-2 memory per rank, GPU utilisation.

    python bench/bench_gpu.py                 # on a machine with a CUDA build of torch and one GPU (an H200, for instance)
    python bench/bench_gpu.py --dry-run       # the same code path on CPU (gloo), tiny sizes: checks the script, measures nothing

(a) Throughput: the same DeepFM and table trained side by side by `fit_distributed` with one rank under DDP (NCCL) and under
DeepSpeed ZeRO-2, at the same global batch; samples/s = training rows seen by all ranks / the slowest rank's training time
(setup and validation excluded). The goal is >= 1M samples/s under DDP.
(b) Memory: model-state bytes per rank (parameters, gradients, optimizer state and DeepSpeed's fp32 partition copy, from the
live tensors on the rank) under DDP and under DeepSpeed ZeRO-2, and torch's peak allocated GPU memory.
(c) Utilisation: `nvidia-smi` sampled every 200 ms while (a) runs: mean and max GPU utilisation and memory used.
Every launch has a timeout; the whole run stops before 8 minutes. Prints markdown tables and one JSON line.
"""
import argparse, json, os, subprocess, sys, threading, time
from pathlib import Path

import numpy as np, pandas as pd, torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from loopkit.training.distributed import fit_distributed

MB = 1 / 2**20


def synthetic_table(rows:int, users:int, items:int, seed:int=0) -> tuple[pd.DataFrame, dict]:
    "Clicks from user and item effects; 90 % train, 10 % valid."
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, users, rows), rng.integers(0, items, rows)
    x = rng.normal(0, 1, (rows, 2)).astype("float32")
    logit = rng.normal(0, 1, users)[u] + rng.normal(0, 1, items)[i] + x[:, 0] - 1
    table = pd.DataFrame({"user_id": u, "item_id": i, "x0": x[:, 0], "x1": x[:, 1], "click": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int8")})
    table["split"] = np.where(np.arange(rows) < 0.9 * rows, "train", "valid")
    return table, {"label": "click", "categorical": ["user_id", "item_id"], "numeric": ["x0", "x1"]}


class GpuSampler:
    "nvidia-smi every 200 ms in a thread: utilisation (%) and memory used (MiB) while a block runs."
    def __init__(self): self.samples, self.stop_ = [], threading.Event()
    def _run(self):
        while not self.stop_.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                                     capture_output=True, text=True, timeout=5).stdout.strip()
                if out: self.samples.append(tuple(float(v) for v in out.split(",")))
            except (OSError, subprocess.TimeoutExpired, ValueError): pass
            time.sleep(0.2)
    def __enter__(self): self.thread = threading.Thread(target=self._run, daemon=True); self.thread.start(); return self
    def __exit__(self, *exc): self.stop_.set(); self.thread.join(10)
    def summary(self) -> dict:
        if not self.samples: return {"samples": 0}
        util, mem = np.array(self.samples).T
        return {"samples": len(self.samples), "util_mean_pct": round(float(util.mean()), 1), "util_max_pct": float(util.max()), "mem_max_mib": float(mem.max())}


def samples_per_s(result) -> float:
    "Training rows seen by all ranks / the slowest rank's training time."
    return sum(r["samples"] for r in result.ranks) / max(sum(r["phase_seconds"].values()) for r in result.ranks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--batch-size", type=int, default=65_536, help="global batch")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=1_000_000, help="user ids (items: a tenth)")
    ap.add_argument("--dry-run", action="store_true", help="CPU and gloo, tiny sizes: the script's code path only")
    a = ap.parse_args()
    started, budget = time.time(), 7.5 * 60
    gpu = torch.cuda.is_available() and not a.dry_run
    if not gpu and not a.dry_run:
        print(json.dumps({"measured": False, "why": "no CUDA device visible to torch: nothing measured (run on a GPU machine, or --dry-run)"}))
        return 2
    if a.dry_run: a.rows, a.batch_size, a.epochs, a.vocab = 20_000, 1024, 1, 2_000
    accel = "gpu" if gpu else "cpu"
    table, spec = synthetic_table(a.rows, a.vocab, max(a.vocab // 10, 10))
    settings = dict(model="deepfm", config={"embed_dim": 16, "hidden": [256, 128]}, max_epochs=a.epochs, patience=a.epochs,
                    batch_size=a.batch_size, lr=0.01, seed=0)
    left = lambda: max(30.0, budget - (time.time() - started))
    out = {"device": torch.cuda.get_device_name(0) if gpu else "cpu (dry run)", "torch": torch.__version__, "rows": a.rows, "batch": a.batch_size}

    with GpuSampler() if gpu else open(os.devnull) as sampler:
        ddp = fit_distributed(table, spec, strategy="ddp", devices=1, accelerator=accel, timeout=left(), **settings)
    out["ddp_nccl" if gpu else "ddp_gloo"] = {"samples_per_s": round(samples_per_s(ddp)), "valid_auc": round(ddp.metrics["valid_auc"], 4),
                                             "gpu": sampler.summary() if gpu else None}
    zero = fit_distributed(table, spec, strategy="deepspeed_stage_2", devices=1, accelerator=accel, timeout=left(), **settings)
    out["zero2"] = {"samples_per_s": round(samples_per_s(zero)), "valid_auc": round(zero.metrics["valid_auc"], 4)}
    mem = {name: {k: round(v * MB, 1) for k, v in r.ranks[0]["memory_bytes"].items() if isinstance(v, (int, float))} for name, r in (("ddp", ddp), ("zero2", zero))}
    out["memory_mib_rank0"] = mem
    out["peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() * MB, 1) if gpu else None
    out["seconds"] = round(time.time() - started, 1)

    print(f"\n### DeepFM on {out['device']}: {a.rows:,} rows, global batch {a.batch_size:,}, {a.epochs} epoch(s)\n")
    print("| run | samples/s | valid AUC |\n|---|---:|---:|")
    key = "ddp_nccl" if gpu else "ddp_gloo"
    print(f"| DDP, 1 rank ({'NCCL' if gpu else 'gloo'}; training steps only) | {out[key]['samples_per_s']:,} | {out[key]['valid_auc']} |")
    print(f"| DeepSpeed ZeRO-2, 1 rank | {out['zero2']['samples_per_s']:,} | {out['zero2']['valid_auc']} |")
    print("\n| strategy | parameters MiB | gradients MiB | optimizer state MiB | optimizer's fp32 copy MiB | total MiB |\n|---|---:|---:|---:|---:|---:|")
    for name, m in mem.items():
        print(f"| {name} | {m.get('parameters')} | {m.get('gradients')} | {m.get('optimizer_state')} | {m.get('optimizer_copy')} | {m.get('total')} |")
    if gpu: print(f"\nGPU while DDP trained: {out[key]['gpu']}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
