"""Training throughput of `loopkit.training.fit.fit` vs a hand-written PyTorch loop: `python bench/bench_train.py [--rows N] [--threads T]`.

Same model class and initial weights (`build_model` under one seed), same tensors (`FeatureEncoder` over one synthetic
table), same batch size, same optimizer (`configure_optimizers`), same batch order (`TensorBatches`), same validation
(AUC over the valid split after every epoch, scored in chunks of `max(batch size, 8192)` rows as `fit` does), same `torch.set_num_threads`. Throughput counts training rows times epochs
over the wall time from the start of the first epoch to the end of the last (validation included in both; data
preparation excluded in both: `fit` is timed by a callback between `on_train_start` and `on_train_end`). Repeats are
interleaved (plain, fit, plain, fit, ...) and the median is reported, with the ratio fit / plain. Prints a markdown table.
"""
import argparse, platform, statistics, time
import numpy as np, pandas as pd, torch
import lightning as L
import torch.nn.functional as F
from loopkit.evaluation.metrics import auc
from loopkit.models.encoder import FeatureEncoder, rows_of_split
from loopkit.models.ctr import build_model
from loopkit.training.fit import TensorBatches, fit, _VALID_ROWS

CONFIGS = {"lr": {}, "deepfm": {"embed_dim": 16, "hidden": [128, 64]}}


def synthetic_table(rows:int, seed:int=0) -> tuple[pd.DataFrame, dict]:
    "A features table: user/item/device ids and 4 numeric columns, 80% train, 20% valid."
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, 20_000, rows), rng.integers(0, 5_000, rows)
    x = rng.normal(0, 1, (rows, 4))
    logit = rng.normal(0, 1, 20_000)[users] + rng.normal(0, 1, 5_000)[items] + x[:, 0] - 1
    table = pd.DataFrame({"user_id": users, "item_id": items, "device": rng.choice(["ios", "android", "web"], rows),
                          **{f"x{i}": x[:, i] for i in range(4)},
                          "click": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int8")})
    table["split"] = np.where(np.arange(rows) < 0.8 * rows, "train", "valid")
    return table, {"label": "click", "categorical": ["user_id", "item_id", "device"], "numeric": [f"x{i}" for i in range(4)]}


def plain_loop(table, spec, model, epochs, batch_size, seed) -> float:
    "Seconds of a hand-written loop: Adam steps over shuffled slices, then validation AUC, every epoch."
    train, valid = rows_of_split(table, "train"), rows_of_split(table, "valid")
    enc = FeatureEncoder(spec["categorical"], spec["numeric"]).fit(train)
    (cat, num), (vcat, vnum) = enc.transform(train), enc.transform(valid)
    label, vlabel = torch.tensor(train.click.to_numpy(), dtype=torch.float32), valid.click.to_numpy()
    batches = TensorBatches(cat, num, label, batch_size=batch_size, shuffle=True, seed=seed)
    torch.manual_seed(seed)
    net = build_model(model, enc.cardinalities_, len(spec["numeric"]), CONFIGS[model])
    opt = net.configure_optimizers()
    vs = max(batch_size, _VALID_ROWS)
    start = time.perf_counter()
    for epoch in range(epochs):
        net.train(); batches.set_epoch(epoch)
        for b in batches:
            opt.zero_grad(set_to_none=True)
            loss = F.binary_cross_entropy_with_logits(net(b["cat"], b["num"]), b["label"])
            loss.backward(); opt.step()
        net.eval()
        with torch.no_grad():
            p = torch.cat([torch.sigmoid(net(vcat[i:i + vs], vnum[i:i + vs])) for i in range(0, len(vcat), vs)])
        auc(vlabel, p.numpy())
    return time.perf_counter() - start


class _Clock(L.Callback):
    def on_train_start(self, trainer, pl_module): self.start = time.perf_counter()
    def on_train_end(self, trainer, pl_module): self.seconds = time.perf_counter() - self.start


def loopkit_fit(table, spec, model, epochs, batch_size, seed) -> float:
    "Seconds of `fit`'s training loop (Lightning), validation every epoch, no checkpoints."
    clock = _Clock()
    fit(table, spec, model=model, max_epochs=epochs, batch_size=batch_size, seed=seed, patience=epochs + 1,
        config=CONFIGS[model], callbacks=[clock])
    return clock.seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", nargs="+", default=list(CONFIGS))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    table, spec = synthetic_table(a.rows)
    n_train = int((table.split == "train").sum())
    lines = []
    for model in a.models:
        plain_loop(table, spec, model, 1, a.batch_size, 0); loopkit_fit(table, spec, model, 1, a.batch_size, 0)  # warm-up
        times = {"plain": [], "fit": []}
        for r in range(a.repeats):
            times["plain"].append(plain_loop(table, spec, model, a.epochs, a.batch_size, r))
            times["fit"].append(loopkit_fit(table, spec, model, a.epochs, a.batch_size, r))
        rate = {k: n_train * a.epochs / statistics.median(v) for k, v in times.items()}
        lines.append(f"| {model} | {rate['plain']:,.0f} | {rate['fit']:,.0f} | {rate['fit'] / rate['plain']:.3f}x | "
                     f"{len(TensorBatches(torch.zeros(n_train), None, batch_size=a.batch_size)) * a.epochs} |")
        print(f"  {model}: plain {times['plain']} s, fit {times['fit']} s", flush=True)
    print(f"\n{n_train:,} training rows, batch {a.batch_size}, {a.epochs} epochs (validation each epoch), {a.threads} thread(s), "
          f"median of {a.repeats} interleaved repeats; {platform.machine()}, torch {torch.__version__}\n")
    print("| model | plain PyTorch (samples/s) | loopkit fit (samples/s) | fit / plain | steps |\n|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
