"Distributed training launched as processes: DDP over gloo and DeepSpeed ZeRO-2 on two CPU ranks, and two simulated nodes."
import threading
import numpy as np, pandas as pd, pytest, torch

from loopkit.training.distributed import fit_distributed, _free_port
from loopkit.models.ctr import load_model
from loopkit.training.fit import fit

SETTINGS = dict(model="deepfm", max_epochs=2, batch_size=200, lr=0.02, seed=3, config={"embed_dim": 4, "hidden": [16]})


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    n = 3000
    users, items = rng.integers(0, 80, n), rng.integers(0, 40, n)
    logit = -0.8 + 1.5 * rng.normal(0, 1, 80)[users] + 1.5 * rng.normal(0, 1, 40)[items]
    table = pd.DataFrame({"event_id": np.arange(n), "ts": np.arange(n), "user_id": users, "item_id": items,
                          "x": rng.normal(0, 1, n), "click": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8")})
    table["split"] = np.select([table.index < 2400, table.index < 2700], ["train", "valid"], "test")
    return table, {"label": "click", "categorical": ["user_id", "item_id"], "numeric": ["x"]}


def test_ddp_two_gloo_ranks_equal_each_other_and_one_process(features, tmp_path):
    table, spec = features
    ddp = fit_distributed(table, spec, strategy="ddp", devices=2, out_dir=tmp_path, **SETTINGS)
    assert ddp.world_size == 2 and len(ddp.ranks) == 2
    assert ddp.ranks[0]["weights_sha256"] == ddp.ranks[1]["weights_sha256"]  # identical weights on both ranks
    assert ddp.ranks[0]["samples"] + ddp.ranks[1]["samples"] == 2 * 2400  # each rank saw half of every global batch
    assert ddp.metrics["valid_auc"] > 0.7
    # averaging the two halves' gradients is the gradient of the whole batch: one process with the same global batch
    single = fit(table, spec, **SETTINGS)
    assert ddp.best_epoch == single.best_epoch
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp.model.state_dict()[name], value, atol=1e-4, rtol=1e-3, msg=name)
    assert ddp.metrics["valid_auc"] == pytest.approx(single.metrics["valid_auc"], abs=1e-3)


def test_deepspeed_zero2_on_two_cpu_ranks_saves_a_loadable_model(features, tmp_path):
    table, spec = features
    zero = fit_distributed(table, spec, strategy="deepspeed_stage_2", devices=2, out_dir=tmp_path, **SETTINGS)
    assert zero.ranks[0]["weights_sha256"] == zero.ranks[1]["weights_sha256"]
    assert zero.metrics["valid_auc"] > 0.7
    loaded = load_model(tmp_path / "model")
    valid = table[table.split == "valid"]
    cat, num = loaded.encoder_.transform(valid)
    assert torch.equal(loaded.score(cat, num), zero.model.score(cat, num))
    # ZeRO-2: each rank keeps half of the optimizer state (Adam's two moments of half the parameters)
    n_params = sum(p.numel() for p in loaded.parameters())
    assert zero.ranks[0]["memory_bytes"]["optimizer_state"] < 0.6 * 2 * 4 * n_params


def test_two_nodes_through_torchrun_variables(features, tmp_path):
    "Two 'machines' (one process each) on localhost, joined by NODE_RANK / MASTER_ADDR / MASTER_PORT."
    table, spec = features
    port, results, errors = _free_port(), {}, []
    def node(rank):
        try: results[rank] = fit_distributed(table, spec, strategy="ddp", devices=1, num_nodes=2, node_rank=rank,
                                             master_addr="127.0.0.1", master_port=port, out_dir=tmp_path / f"node{rank}",
                                             timeout=120, **SETTINGS)
        except Exception as e: errors.append(e)
    threads = [threading.Thread(target=node, args=(r,)) for r in (0, 1)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert not errors, errors
    assert results[1] is None  # the model is written where rank 0 ran
    assert results[0].world_size == 2
    other = (tmp_path / "node1" / "ranks" / "rank1.json").read_text()
    assert results[0].ranks[0]["weights_sha256"] in other


def test_the_strategy_is_a_parameter_of_the_train_stage(tmp_path):
    "`-p train.strategy=ddp -p train.devices=2` trains in two gloo worker processes; nothing else changes."
    import json
    from conftest import loopkit
    code, rec, err = loopkit('run', '-p', 'ingest.n_events=3000', '-p', 'train.strategy=ddp', '-p', 'train.devices=2',
                             '--json', cwd=tmp_path)
    assert code == 0, err[-3000:]
    train = next(s for s in rec['stages'] if s['name'] == 'train')
    assert train['status'] == 'ran'
    assert json.loads((tmp_path/'runs/latest/train/metrics.json').read_text())['world_size'] == 2.0
    assert (tmp_path/'runs/latest/train/model').is_dir()
