"Regression checks of loopkit.features that the serving and pipeline code rely on (the notebook holds the documented examples)."
import inspect
import numpy as np, pandas as pd, pyarrow as pa
import pytest
from loopkit.features.online import OnlineFeatures
from loopkit.features.definitions import PriorCount, Transform, default_features, transform
from loopkit.features.point_in_time import point_in_time_join
from loopkit.features.batch import compute_features
from loopkit.features.versions import feature_set_version


def _log(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return pa.table({"event_id": np.arange(n), "ts": np.sort(rng.integers(0, 200, n)) + 1_700_000_000,
                     "user_id": rng.integers(0, 5, n), "item_id": rng.integers(0, 30, n),
                     "category": rng.choice(["news", "sports", "music"], n), "click": pa.array(rng.integers(0, 2, n), pa.int8())})


def test_lookup_many_signature_and_values():
    assert str(inspect.signature(OnlineFeatures.lookup_many)) == "(self, rows: 'list[dict]', ts=None) -> 'pd.DataFrame'"
    online = OnlineFeatures()
    for r in _log().to_pylist(): online.ingest(r)
    now = 1_700_000_300
    cands = [{"user_id": 2, "item_id": i, "category": ["news", "sports", "music"][i % 3]} for i in range(100)]
    got = online.lookup_many(cands, ts=now)
    assert list(got.columns) == [f.name for f in default_features()] and len(got) == 100
    assert got.to_dict("records") == [online.lookup(c, now) for c in cands]
    same_ts = online.lookup_many([dict(c, ts=now) for c in cands[:3]])  # ts from the rows when all share one
    assert same_ts.to_dict("records") == got.head(3).to_dict("records")


def test_point_in_time_join_equals_merge_asof_and_duckdb():
    rng = np.random.default_rng(1)
    ev = pd.DataFrame({"user_id": rng.integers(0, 300, 20_000), "ts": np.sort(rng.integers(0, 10**6, 20_000))})
    ft = pd.DataFrame({"user_id": rng.integers(0, 300, 20_000), "fts": rng.integers(0, 10**6, 20_000)}).drop_duplicates(["user_id", "fts"])
    ft["v"] = rng.random(len(ft))
    for ttl in (None, 5_000):
        got = point_in_time_join(ev, ft, "user_id", feature_ts="fts", ttl=ttl).to_pandas()
        want = pd.merge_asof(ev, ft.sort_values("fts"), left_on="ts", right_on="fts", by="user_id", tolerance=ttl)
        np.testing.assert_array_equal(got.v.to_numpy(), want.v.to_numpy())
        shuffled = ev.sample(frac=1, random_state=0)  # events out of time order take the sorting path
        pd.testing.assert_frame_equal(point_in_time_join(shuffled, ft, "user_id", feature_ts="fts", ttl=ttl).to_pandas(),
                                      point_in_time_join(shuffled, ft, "user_id", feature_ts="fts", ttl=ttl, engine="duckdb").to_pandas())


def test_transform_batch_online_and_version():
    @transform(sql="ln(1 + {c})", c=PriorCount("user_id", "click"))
    def user_log_clicks(c): return float(np.log(1 + c))
    feats = default_features() + [user_log_clicks]
    log = _log(seed=3)
    batch = compute_features(log, feats).to_pandas().set_index("event_id")
    online = OnlineFeatures(feats).replay(log).to_pandas().set_index("event_id")
    np.testing.assert_allclose(batch.user_log_clicks, online.loc[batch.index, "user_log_clicks"], rtol=1e-12)
    assert feature_set_version(feats) != feature_set_version(default_features())
    with pytest.raises(ValueError, match="sql and fn disagree"):
        Transform("bad", {"c": PriorCount("user_id")}, "{c} + 1", lambda c: c + 2).check()
