"""Online feature state on real backing stores: a redis-server the suite starts, RocksDB on disk, the tiered store, and
`loopkit serve --state` keeping its state there."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import httpx
from conftest import served_process, loopkit

from loopkit.features.batch import compute_features
from loopkit.features.definitions import default_features, InRecent, PriorCount, PriorCTR, PriorMean, PriorSum, RecentTags
from loopkit.features.online import OnlineFeatures
from loopkit.features.stores import RocksStore, TieredStore, ParquetStates, save_states, state_store


def random_log(n=500, span=150, seed=3):
    rng = np.random.default_rng(seed)
    dwell = (rng.integers(0, 40, n) / 4).astype(float)
    return pa.table({"event_id": rng.permutation(n), "ts": np.sort(rng.integers(0, span, n)) + 1_700_000_000,
                     "user_id": rng.choice([f"u_{i}" for i in range(7)], n), "item_id": rng.integers(0, 9, n),
                     "category": rng.choice(["news", "sports", "music", "games"], n),
                     "position": rng.integers(0, 10, n).astype("int32"),
                     "dwell": pa.array(np.where(rng.random(n) < 0.1, None, dwell), pa.float64()),
                     "click": pa.array(rng.integers(0, 2, n), pa.int8())})


TAGS = RecentTags("user_id", "category", n=2, window=20)
DEFS = list({f.name: f for f in [PriorCount("user_id"), PriorCount("user_id", "click", window=15), PriorSum("item_id", "dwell", window=20),
                                 PriorMean("user_id", "dwell"), PriorCTR("item_id", window=25), PriorCount(("user_id", "category"), "click", window=30),
                                 TAGS, InRecent(TAGS, "category")] + default_features()}.values())
NAMES = [f.name for f in DEFS]


def by_event(rows): return {r["event_id"]: {k: r[k] for k in NAMES} for r in rows}


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory):
    "An lr model trained on 3,000 synthetic events, saved."
    from loopkit.features.batch import build_table
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.ingest.synth import synth_events
    from loopkit.models.ctr import save_model
    from loopkit.training.fit import fit
    d = tmp_path_factory.mktemp("stores-model")
    spec = build_table(pseudonymize_events(synth_events(3000, n_items=40, days=2, seed=2), b"stores-test-key-0123456789abcdef"), d / "features")
    save_model(fit(d / "features" / "table.parquet", spec, model="lr", max_epochs=1).model, d / "v1")
    return d / "v1"


@pytest.fixture(scope="module")
def batch():
    log = random_log()
    return log, by_event(compute_features(log, DEFS).to_pylist())


def test_redis_store_gives_the_batch_values(redis_url, batch):
    log, expected = batch
    store = state_store(redis_url + "?prefix=parity:")
    assert by_event(OnlineFeatures(DEFS, store).replay(log).to_pylist()) == expected
    keys = store.keys()
    assert keys and all(isinstance(k, tuple) and isinstance(k[1], tuple) for k in keys)
    assert store.get_many(keys[:3]) == [store.get(k) for k in keys[:3]]
    store.delete(keys[0]); assert store.get(keys[0]) is None and len(store) == len(keys) - 1


def test_redis_state_is_shared_by_two_processes_engines(redis_url, batch):
    "Two engines on one server: what one ingests, the other reads (the replicas of a service share their users' state)."
    log, _ = batch
    rows = log.sort_by([("ts", "ascending"), ("event_id", "ascending")]).to_pylist()
    writer, reader = OnlineFeatures(DEFS, state_store(redis_url + "?prefix=shared:")), OnlineFeatures(DEFS, state_store(redis_url + "?prefix=shared:"))
    alone = OnlineFeatures(DEFS)
    for r in rows: writer.ingest(r); alone.ingest(r)
    probe = dict(rows[-1], ts=rows[-1]["ts"] + 1)
    writer.lookup(probe)  # applies the writer's last pending group
    assert reader.lookup(probe) == alone.lookup(probe)


def test_redis_ttl_expires_untouched_state(redis_url):
    store = state_store(redis_url + "?prefix=ttl:&ttl=1")
    store.put(("user_prior_clicks", ("u_x",)), [1, 0])
    assert store.client.ttl(store._k(("user_prior_clicks", ("u_x",)))) in (0, 1)


def test_unreachable_redis_is_named(tmp_path):
    with pytest.raises(ConnectionError, match="no Redis at redis://127.0.0.1:9/0"): state_store("redis://127.0.0.1:9/0")


def test_rocks_and_tiered_stores_give_the_batch_values_and_survive_a_restart(tmp_path, batch):
    log, expected = batch
    rocks = RocksStore(tmp_path / "rocks")
    assert by_event(OnlineFeatures(DEFS, rocks).replay(log).to_pylist()) == expected
    n = len(rocks); rocks.close()
    again = RocksStore(tmp_path / "rocks"); assert len(again) == n
    cold = ParquetStates(save_states(again, tmp_path / "cold.parquet", row_group_size=16)); again.close()
    assert len(cold) == n
    tiered = TieredStore(RocksStore(tmp_path / "warm"), hot_keys=4, idle_seconds=None)
    assert by_event(OnlineFeatures(DEFS, tiered).replay(log).to_pylist()) == expected
    assert tiered.stats_["warm"] > 0 and tiered.stats_["demoted"] > 0
    tiered.close()


def test_a_tiered_store_over_a_cold_snapshot_continues_where_it_stopped(tmp_path, batch):
    "Replay half the log, snapshot its state to parquet, continue the second half on a tiered store over that snapshot."
    log, expected = batch
    order = log.sort_by([("ts", "ascending"), ("event_id", "ascending")])
    cut = order["ts"][order.num_rows // 2].as_py()
    first, second = order.filter(pa.compute.less(order["ts"], cut)), order.filter(pa.compute.greater_equal(order["ts"], cut))
    warmup = OnlineFeatures(DEFS)
    for r in first.to_pylist(): warmup.ingest(r)
    warmup.lookup(dict(first.to_pylist()[-1], ts=cut))  # apply the last pending group
    snapshot = save_states(warmup.store_, tmp_path / "states.parquet", row_group_size=8)
    tiered = state_store(f"tiered://{tmp_path}/warm?hot_keys=3&idle_seconds=1&cold={snapshot}")
    online = OnlineFeatures(DEFS, tiered)
    online.clock_ = cut
    got = by_event(online.replay(second).to_pylist())
    assert got == {e: expected[e] for e in got} and len(got) == second.num_rows
    assert tiered.stats_["cold"] > 0
    tiered.close()


def test_serve_keeps_its_online_state_in_redis(redis_url, small_model_dir, tmp_path):
    "`loopkit serve --state redis://...`: feedback on one server is in Redis, where another process finds it."
    env = {"LOOPKIT_HMAC_KEY": "stores-test-key-0123456789abcdef"}
    url_state = redis_url + "?prefix=serve:"
    with served_process(["--model-dir", small_model_dir, "--log-dir", "", "--k", "3", "--state", url_state], tmp_path, env) as url:
        import time
        now = int(time.time())
        r = httpx.post(url + "/rank", json={"user": "someone", "candidates": [{"item_id": i, "category": "news"} for i in range(5)], "ts": now}).json()
        assert httpx.post(url + "/feedback", json={"request_id": r["request_id"], "item_id": r["items"][0], "click": 1, "dwell": 5.0, "ts": now}).status_code == 200
        httpx.post(url + "/rank", json={"user": "someone", "candidates": [{"item_id": 0, "category": "news"}], "ts": now + 1})
    store = state_store(url_state)
    names = {k[0] for k in store.keys()}
    assert {"user_prior_clicks_24h", "item_prior_ctr"} & names, names
    assert all("someone" not in str(k) for k in store.keys()), "a raw user id reached the shared store"
    assert loopkit("serve", "--model-dir", small_model_dir, "--state", "redis://127.0.0.1:9/0", cwd=tmp_path)[0] == 2
