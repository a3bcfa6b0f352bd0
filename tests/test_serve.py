"Serving: HTTP round trip, validation, admin auth, rollout modes, automatic rollback, hot reload under load, log, exploration."
import shutil, socket, threading, time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
import pytest
import uvicorn
from fastapi.testclient import TestClient

from loopkit.ingest.synth import synth_events
from loopkit.features.online import OnlineFeatures
from loopkit.features.batch import build_table
from loopkit.models.ctr import save_model
from loopkit.ingest.privacy import pseudonymize_events
from loopkit.serving.rollout import Exploration, Rollout, RolloutChecks, traffic_bucket
from loopkit.serving.sources import LocalModels, RegistryModels, RequestError
from loopkit.serving.service import Service
from loopkit.serving.http import create_app
from loopkit.serving.log import log_events, read_log
from loopkit.training.fit import fit

KEY = b"test-serve-key-0123456789"
ADMIN = "admin-token-for-tests-0123"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
T0 = 1_767_400_000  # event time of the tests (2026-01-03)
CONTEXT = {"age_band": "25-34", "region": "north", "device": "ios"}


def inverted(model):
    "The same lr model with negated logits: it ranks the best items last."
    bad = type(model)(model.cardinalities, model.n_num, model.config)
    bad.load_state_dict({k: -v for k, v in model.state_dict().items()}); bad.encoder_ = model.encoder_; bad.calibration_ = (model.calibration_[0], -model.calibration_[1])
    return bad.eval()


class Broken:
    "A model that cannot score."
    def predict_frame(self, df): raise RuntimeError("broken model")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    "Folders of a good lr model (v1, v3 = copy), an inverted one (v2), and 20 candidates with a click world."
    d = tmp_path_factory.mktemp("serve")
    events = pseudonymize_events(synth_events(3000, n_items=60, days=2, seed=3), KEY)
    spec = build_table(events, d / "features")
    good = fit(d / "features" / "table.parquet", spec, model="lr", max_epochs=1).model
    save_model(good, d / "v1"); save_model(inverted(good), d / "v2"); shutil.copytree(d / "v1", d / "v3")
    table = pd.read_parquet(d / "features" / "table.parquet").drop_duplicates("item_id").head(20)
    candidates = [dict(item_id=int(i), category=c) for i, c in zip(table.item_id, table.category)]
    scores = Service(LocalModels({"1": d / "v1"}), OnlineFeatures(), key=KEY, k=20).rank("probe", candidates, CONTEXT, ts=T0)
    quality = {item: 1 - pos / 20 for pos, item in enumerate(scores["items"])}  # 1 for the good model's favourite
    world = {item: 0.5 * q ** 3 for item, q in quality.items()}
    return dict(dir=d, good=good, candidates=candidates, world=world)


def local(models, *versions, **aliases):
    return LocalModels({v: models["dir"] / f"v{v}" for v in versions}, aliases or None)


def service(models, source, **kw):
    return Service(source, OnlineFeatures(), key=KEY, k=kw.pop("k", 5), **kw)


def simulate(svc, models, n, t, seed=0, stop_when_off=True):
    "n requests 10 s apart from 200 users; every impression gets its outcome from the world; tick after each."
    rng = np.random.default_rng(seed)
    for _ in range(n):
        t += 10
        res = svc.rank(int(rng.integers(200)), models["candidates"], CONTEXT, ts=t)
        for item in res["items"]: svc.feedback(res["request_id"], item, int(rng.random() < models["world"][item]), ts=t)
        st = svc.tick(t)
        if stop_when_off and st["mode"] == "off": break
    return t


def test_rank_feedback_round_trip(models):
    svc = service(models, local(models, "1"))
    with TestClient(create_app(svc, ADMIN)) as client:
        r = client.post("/rank", json={"user": "alice", "candidates": models["candidates"], "context": CONTEXT, "ts": T0})
        assert r.status_code == 200
        body = r.json()
        assert len(body["items"]) == 5 and body["arm"] == "champion" and body["model_version"] == "1"
        assert body["scores"] == sorted(body["scores"], reverse=True) and set(body["items"]) <= {c["item_id"] for c in models["candidates"]}
        f = client.post("/feedback", json={"request_id": body["request_id"], "item_id": body["items"][0], "click": 1, "dwell": 12.0, "ts": T0 + 5})
        assert f.status_code == 200 and f.json() == {"request_id": body["request_id"], "item_id": body["items"][0], "click": 1, "arm": "champion"}
        metrics = client.get("/metrics").text
        assert 'loopkit_impressions_total{arm="champion"} 5.0' in metrics and 'loopkit_clicks_total{arm="champion"} 1.0' in metrics
        assert 'loopkit_click_rate{arm="champion"} 0.2' in metrics and "loopkit_request_latency_seconds_count 1.0" in metrics
        assert client.get("/healthz").json() == {"status": "ok", "champion": "1", "challenger": None}
    # the click reached the online features: the user's click count is 1 for the next request
    rows = [{"user_id": svc._token("alice"), "item_id": body["items"][0], "category": None, "ts": T0 + 6}]
    assert svc.features_.lookup(rows[0])["user_prior_clicks"] == 1


def test_validation_errors_say_what_and_where(models):
    svc = service(models, local(models, "1"))
    cands = models["candidates"]
    with TestClient(create_app(svc, ADMIN)) as client:
        def post(path, body): return client.post(path, json=body)
        r = post("/rank", {"candidates": cands})
        assert r.status_code == 422 and "body.user: Field required" in r.json()["detail"]
        r = post("/rank", {"user": "u", "candidates": [{"item_id": i} for i in range(501)]})
        assert r.status_code == 422 and "body.candidates" in r.json()["detail"] and "at most 500" in r.json()["detail"]
        r = post("/rank", {"user": "u", "candidates": [{"item_id": 1}, {"item_id": 2.5}]})
        assert r.status_code == 422 and r.json()["detail"].startswith("body.candidates.1.item_id"), r.json()
        r = post("/rank", {"user": "u", "candidates": [{"item_id": 1}, {"item_id": "sku-two"}], "ts": T0})  # string ids are ids too
        assert r.status_code == 200 and set(r.json()["items"]) == {1, "sku-two"}, r.json()
        r = post("/rank", {"user": "", "candidates": cands})
        assert r.status_code == 422 and "body.user" in r.json()["detail"]
        r = post("/rank", {"user": "u", "candidates": cands, "kk": 3})
        assert r.status_code == 422 and "body.kk: Extra inputs are not permitted" in r.json()["detail"]
        r = post("/rank", {"user": "u", "candidates": [{"item_id": 1}, {"item_id": 1}]})
        assert r.status_code == 422 and r.json()["detail"] == "candidates[1].item_id 1 appears twice in the request"
        r = client.post("/rank", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422
        ok = post("/rank", {"user": "u", "candidates": cands, "ts": T0}).json()
        r = post("/feedback", {"request_id": ok["request_id"], "item_id": ok["items"][0], "click": 2})
        assert r.status_code == 422 and "body.click" in r.json()["detail"]
        r = post("/feedback", {"request_id": "nope", "item_id": 1, "click": 1, "ts": T0 + 1})
        assert r.status_code == 404 and "unknown request_id 'nope'" in r.json()["detail"]
        r = post("/feedback", {"request_id": ok["request_id"], "item_id": 10**9, "click": 1, "ts": T0 + 1})
        assert r.status_code == 422 and "was not shown" in r.json()["detail"]
        assert post("/feedback", {"request_id": ok["request_id"], "item_id": ok["items"][0], "click": 0, "ts": T0 + 1}).status_code == 200
        r = post("/feedback", {"request_id": ok["request_id"], "item_id": ok["items"][0], "click": 1, "ts": T0 + 2})
        assert r.status_code == 409 and "already recorded" in r.json()["detail"]
    with pytest.raises(RequestError, match="at most 10 per request"):
        service(models, local(models, "1"), max_candidates=10).rank("u", cands, ts=T0)


def test_admin_endpoints_need_the_token(models):
    svc = service(models, local(models, "1"))
    with TestClient(create_app(svc, ADMIN)) as client:
        for path in ("/admin/reload", "/admin/promote", "/admin/retire"):
            r = client.post(path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
            assert client.post(path, headers={"Authorization": "Bearer nope"}).status_code == 403, path
        r = client.post("/admin/rollout", json={"mode": "canary", "share": 0.1})
        assert r.status_code == 401
        assert client.post("/admin/reload", headers=AUTH).json()["champion"] == "1"
        r = client.post("/admin/retire", headers=AUTH)
        assert r.status_code == 409 and "no challenger" in r.json()["detail"]
        r = client.post("/admin/rollout", headers=AUTH, json={"mode": "canary", "share": 0.1})
        assert r.status_code == 409 and "no challenger to canary" in r.json()["detail"]
    with TestClient(create_app(service(models, local(models, "1")), admin_token=None)) as client:
        r = client.post("/admin/reload", headers=AUTH)
        assert r.status_code == 403 and "disabled" in r.json()["detail"]


def test_canary_is_sticky_and_a_ramp_only_adds_users(models):
    svc = service(models, local(models, "1", "2", champion="1", challenger="2"))
    svc.set_rollout("canary", share=0.3)
    users = list(range(300))
    first = {u: svc.rank(u, models["candidates"], ts=T0)["arm"] for u in users}
    assert first == {u: svc.rank(u, models["candidates"], ts=T0 + 1)["arm"] for u in users}
    assert 0.2 < sum(a == "challenger" for a in first.values()) / len(users) < 0.4
    assert all((a == "challenger") == (traffic_bucket(svc._token(u)) < 0.3) for u, a in first.items())
    svc.set_rollout("canary", share=0.6)
    wider = {u: svc.rank(u, models["candidates"], ts=T0 + 2)["arm"] for u in users}
    assert all(wider[u] == "challenger" for u in users if first[u] == "challenger")


def test_shadow_is_scored_and_logged_but_never_shown(models, tmp_path):
    svc = service(models, local(models, "1", "2", champion="1", challenger="2"), log_dir=tmp_path / "log")
    alone = service(models, local(models, "1"))
    svc.set_rollout("shadow")
    for u in range(30):
        res = svc.rank(u, models["candidates"], CONTEXT, ts=T0 + u)
        assert res["arm"] == "champion" and res["model_version"] == "1" and set(res["arms"]) == {"champion"}
        assert res["items"] == alone.rank(u, models["candidates"], CONTEXT, ts=T0 + u)["items"]
    svc.close()
    shadow = read_log(tmp_path / "log", "shadow").to_pandas()
    assert len(shadow) == 30 * 5 and set(shadow.model_version) == {"2"} and set(shadow.arm) == {"shadow"}
    assert svc.status()["arms"]["shadow"]["requests"] == 30


def test_ramp_rolls_back_a_broken_challenger_by_itself(models):
    source = local(models, "1", "2", champion="1", challenger="2")
    rollbacks = []
    svc = service(models, source, on_rollback=lambda v, why: (rollbacks.append((v, why)), source.retire(v, why)),
                  rollout=Rollout("ramp", steps=(0.25, 0.5, 1.0), window=1200,
                                  checks=RolloutChecks(min_impressions=150, max_latency_p99_ms=1e6)))
    st = svc.status()
    assert (st["mode"], st["share"], st["challenger"]) == ("ramp", 0.25, "2")  # a new challenger gets the configured ramp
    simulate(svc, models, 1000, T0)
    st = svc.status()
    assert (st["champion"], st["challenger"], st["mode"], st["share"]) == ("1", None, "off", 0.0)
    assert st["history"][-1]["what"] == "rollback" and "click-rate" in st["history"][-1]["why"]
    assert len(rollbacks) == 1 and rollbacks[0][0] == "2"
    assert source.resolve("champion") == "1" and source.resolve("challenger") is None
    assert svc.reload()["challenger"] is None  # a rolled-back version is not loaded again
    for u in range(50): assert svc.rank(u, models["candidates"], ts=T0 + 10**6)["arm"] == "champion"


def test_ramp_advances_on_good_checks_and_promotes(models):
    source = local(models, "1", "3", champion="1", challenger="3")
    promoted = []
    svc = service(models, source, on_promote=lambda v, why: (promoted.append(v), source.promote(v, why)),
                  rollout=Rollout("ramp", steps=(0.25, 0.5, 1.0), window=600,
                                  checks=RolloutChecks(min_impressions=150, max_latency_p99_ms=1e6)))
    simulate(svc, models, 1000, T0, seed=1)
    st = svc.status()
    assert [e["what"] for e in st["history"]] == ["start", "advance", "advance", "promote"]
    assert [e["share"] for e in st["history"][1:3]] == [0.5, 1.0]
    assert promoted == ["3"] and (st["champion"], st["challenger"], source.resolve("champion")) == ("3", None, "3")
    assert svc.rank(1, models["candidates"], ts=T0 + 10**6)["model_version"] == "3"


def test_a_ramp_with_objectives_rolls_back_a_challenger_that_narrows_every_list(models):
    cats = pd.Series([c["category"] for c in models["candidates"]]).value_counts()
    top = cats.index[0]
    assert cats.iloc[0] >= 5                                      # enough items of one category to fill a list of 5
    class OneCategory:
        "The good model's scores, every item of one category first: lists of one category, about as many clicks."
        def predict_frame(self, df):
            df = df.assign(**{k: v for k, v in CONTEXT.items() if k not in df})   # the load-time probe carries no context
            return 0.5 * models["good"].predict_frame(df) + 0.5 * (df["category"] == top).to_numpy()
    owner = {"ctr": {"min_change": -0.5, "weight": 1.0}, "diversity": {"min_change": -0.1, "weight": 1.0}}
    outcomes = {}
    for objectives in (None, owner):
        source = LocalModels({"1": models["dir"] / "v1", "4": OneCategory()}, {"champion": "1", "challenger": "4"})
        svc = service(models, source, on_promote=lambda v, why: source.promote(v, why), on_rollback=lambda v, why: source.retire(v, why),
                      rollout=Rollout("ramp", steps=(0.25, 0.5, 1.0), window=600,
                                      checks=RolloutChecks(min_impressions=150, max_latency_p99_ms=1e6, max_ctr_drop=0.9, objectives=objectives)))
        simulate(svc, models, 1000, T0, seed=1)
        st = svc.status(); outcomes[objectives is not None] = st["history"][-1]
        arms = st["arms"]
    assert outcomes[False]["what"] == "promote"                   # the click-rate checks alone let it through
    assert outcomes[True]["what"] == "rollback" and outcomes[True]["why"].startswith("online objectives: diversity below the floor"), outcomes[True]
    assert [e["what"] for e in st["history"]] == ["start", "advance", "advance", "rollback"]   # judged when the last step ended
    assert arms["challenger"]["diversity"] == 0 and arms["champion"]["diversity"] > 0.5


def test_a_model_that_cannot_score_never_goes_live(models):
    source = LocalModels({"1": models["dir"] / "v1", "x": Broken()}, {"champion": "1"})
    svc = service(models, source, rollout=Rollout("canary", share=0.5, checks=RolloutChecks(min_requests=20)))
    source.set_alias("challenger", "x")
    with pytest.raises(RuntimeError, match="nothing to serve: version x refused: RuntimeError: broken model"):
        Service(LocalModels({"x": Broken()}, {"champion": "x"}), OnlineFeatures(), key=KEY).start()
    assert svc.reload()["errors"]["challenger"].startswith("version x refused")  # ... and never goes live
    assert svc.status()["challenger"] is None


def test_a_challenger_failing_online_is_answered_by_the_champion(models):
    class FailsLater:
        "Scores the probe, then fails on every request."
        def __init__(self): self.calls = 0
        def predict_frame(self, df):
            self.calls += 1
            if self.calls > 1: raise RuntimeError("out of memory")
            return np.full(len(df), 0.5)
    source = LocalModels({"1": models["dir"] / "v1", "x": FailsLater()}, {"champion": "1", "challenger": "x"})
    svc = service(models, source, rollout=Rollout("canary", share=1.0, checks=RolloutChecks(min_requests=20)))
    for i in range(25):
        res = svc.rank(i, models["candidates"], ts=T0 + i)
        assert res["arm"] == "champion" and len(res["items"]) == 5
    st = svc.tick(T0 + 30)
    assert st["mode"] == "off" and st["history"][-1]["what"] == "rollback" and "error rate 100.0%" in st["history"][-1]["why"]


def _free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def test_hot_reload_under_concurrent_requests_fails_no_request(models):
    source = local(models, "1", "3", champion="1")
    svc = service(models, source)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(svc, ADMIN), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True); thread.start()
    for _ in range(100):
        if server.started: break
        time.sleep(0.1)
    stop, failures, versions, count = threading.Event(), [], set(), [0]
    def load():
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            while not stop.is_set():
                r = c.post("/rank", json={"user": str(count[0] % 50), "candidates": models["candidates"]})
                count[0] += 1
                if r.status_code != 200: failures.append(r.status_code)
                else: versions.add(r.json()["model_version"])
    workers = [threading.Thread(target=load) for _ in range(3)]
    try:
        for w in workers: w.start()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as admin:
            for i in range(10):
                source.set_alias("champion", "3" if i % 2 == 0 else "1")
                r = admin.post("/admin/reload")
                assert r.status_code == 200 and r.json()["changed"] == {"champion": source.resolve("champion")}
                time.sleep(0.05)
    finally:
        stop.set()
        for w in workers: w.join()
        server.should_exit = True; thread.join(timeout=10)
    assert failures == [] and count[0] > 20 and versions == {"1", "3"}


def test_registry_alias_moves_are_picked_up(models, tmp_path):
    from mlflow import MlflowClient
    from loopkit.registry import register
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = register(models["dir"] / "v1", {"auc": 0.70}, name="ctr", tracking_uri=uri)
    second = register(models["dir"] / "v3", {"auc": 0.60}, name="ctr", tracking_uri=uri)
    svc = service(models, RegistryModels("ctr", uri, cache_dir=tmp_path / "cache"))
    assert svc.status()["champion"] == str(first["version"])
    MlflowClient(uri, uri).set_registered_model_alias("ctr", "champion", str(second["version"]))
    assert svc.reload()["changed"] == {"champion": str(second["version"])}
    assert svc.rank("u", models["candidates"], ts=T0)["model_version"] == str(second["version"])
    assert len(list((tmp_path / "cache").rglob("model.json"))) == 2  # one download per version


def test_log_is_partitioned_by_event_time_and_holds_no_raw_ids(models, tmp_path):
    svc = service(models, local(models, "1"), log_dir=tmp_path / "log")
    raw = [f"alice-{i}" for i in range(5)]
    for h in range(3):
        for u in raw:
            res = svc.rank(u, models["candidates"], CONTEXT, ts=T0 + h * 3600)
            svc.feedback(res["request_id"], res["items"][1], 1, dwell=3.0, ts=T0 + h * 3600 + 1)
    svc.close()
    parts = sorted({str(p.parent.relative_to(tmp_path / "log")) for p in (tmp_path / "log").rglob("*.parquet")})
    assert parts == ["date=2026-01-03/hour=00", "date=2026-01-03/hour=01", "date=2026-01-03/hour=02"]
    log = read_log(tmp_path / "log").to_pandas()
    assert set(log.event) == {"impression", "feedback"} and len(log) == 3 * 5 * (5 + 1)
    assert log.user_id.str.startswith("u_").all() and not set(raw) & set(log.user_id)
    for f in (tmp_path / "log").rglob("*.parquet"):
        data = f.read_bytes()
        assert not any(u.encode() in data for u in raw)
    assert {"ts", "item_id", "click", "dwell", "age_band", "region", "device", "category", "request_id", "arm", "model_version",
            "score", "position"} <= set(log.columns)
    events = log_events(tmp_path / "log").to_pandas()
    assert len(events) == 3 * 5 * 5 and events.click.sum() == 15 and (events.event_id.to_numpy() == np.arange(len(events))).all()


def test_the_features_each_impression_was_scored_with_are_logged_and_recomputed_offline(models, tmp_path):
    from loopkit.monitoring.consistency import feature_mismatch
    from loopkit.serving.log import log_to_events, read_feature_log
    svc = service(models, local(models, "1"), log_dir=tmp_path / "log", log_features=True)
    simulate(svc, models, 60, T0, stop_when_off=False)
    svc.close()
    served = read_feature_log(tmp_path / "log")
    assert served.num_rows == 60 * 5 and all(u.startswith("u_") for u in served["user_id"].to_pylist())
    assert read_log(tmp_path / "log", event="impression").num_rows == 60 * 5          # the serving log itself is unchanged
    report = feature_mismatch(tmp_path / "log", log_to_events(log_events(tmp_path / "log")))
    assert set(report.feature) == set(svc.feature_names_) & set(served.column_names) and len(report) >= 5
    assert (report.rows == 60 * 5).all()
    # feedback arrives with each request, before the next: online and offline agree on every feature
    assert report.mismatched.sum() == 0, report.to_string()
    import json, papermill   # the monitor stage reports the same, given the log
    events = log_to_events(log_events(tmp_path / "log"))
    half = events.num_rows // 2
    pq.write_table(events.slice(0, half), tmp_path / "before.parquet"); pq.write_table(events.slice(half), tmp_path / "after.parquet")
    papermill.execute_notebook(str(Path(__file__).parents[1] / "templates" / "monitor.ipynb"), str(tmp_path / "monitor.ipynb"), cwd=str(tmp_path),
                               kernel_name="python3", progress_bar=False,
                               parameters=dict(reference="before.parquet", current="after.parquet", min_rows=50, screen_bots=False, feature_log="log"))
    drift = json.loads((tmp_path / "drift.json").read_text())
    assert {r["feature"]: r["mismatched"] for r in drift["feature_mismatch"]} == dict(zip(report.feature, report.mismatched))
    assert json.loads((tmp_path / "metrics.json").read_text())["feature_mismatch_max"] == 0
    # the gate stage judges it: a serving path whose features disagree with the offline ones is not blessed
    shutil.copytree(tmp_path / "log", tmp_path / "skewed")
    for f in sorted((tmp_path / "skewed" / "_features").rglob("*.parquet")):
        t = pq.read_table(f); i = t.column_names.index("user_prior_impressions")
        pq.write_table(t.set_column(i, "user_prior_impressions", pa.compute.add(t["user_prior_impressions"], 1)), f)   # an online store off by one
    (tmp_path / "metrics.json").write_text(json.dumps({"auc": 0.7}))
    def gate(log):
        papermill.execute_notebook(str(Path(__file__).parents[1] / "templates" / "gate.ipynb"), str(tmp_path / "gate.ipynb"), cwd=str(tmp_path),
                                   kernel_name="python3", progress_bar=False,
                                   parameters=dict(metrics="metrics.json", champion_metrics="metrics.json", checks=[{"metric": "auc", "min": 0.5}], feature_log=log))
        return json.loads((tmp_path / "gate.json").read_text())
    clean, skewed = gate("log"), gate("skewed")
    assert clean["verdict"] == "blessed" and {c["metric"] for c in clean["checks"]} >= {f"feature_mismatch/{f}" for f in report.feature}
    failed = [c["metric"] for c in skewed["checks"] if c["status"] == "fail"]
    assert skewed["verdict"] == "not_blessed" and failed == ["feature_mismatch/user_prior_impressions"], skewed


def test_thompson_exploration_slot(models):
    cands = [dict(c, publish_ts=T0 - 10**7) for c in models["candidates"]]  # old items...
    new_a, new_b = 9001, 9002
    cands += [dict(item_id=new_a, category="news", publish_ts=T0 - 60), dict(item_id=new_b, category="news", publish_ts=T0 - 60)]
    class OldFirst:
        "Scores the new items lowest, so the model alone never shows them."
        def predict_frame(self, df): return np.where(df.item_id >= 9000, 0.01, 0.5)
    svc = service(models, LocalModels({"s": OldFirst()}), exploration=Exploration(epsilon=0.3, min_impressions=0, max_age=86400, seed=1))
    explored = []
    for i in range(600):
        res = svc.rank(i % 40, cands, ts=T0 + i)
        assert res["arms"].count("explore") <= 1
        if res["explored"] is not None:
            assert res["arms"][-1] == "explore" and res["items"][-1] == res["explored"] and res["explored"] in (new_a, new_b)
            explored.append(res["explored"])
            svc.feedback(res["request_id"], res["explored"], int(res["explored"] == new_a), ts=T0 + i)  # A is loved, B ignored
    assert 0.2 < len(explored) / 600 < 0.4  # exploration is bounded by epsilon
    late = explored[len(explored) // 2:]
    assert late.count(new_a) > 0.8 * len(late)  # Thompson sampling learned that A is better
    assert svc.posteriors_[new_b][1] == 0 and svc.posteriors_[new_a][1] > 0


def test_metrics_text_and_gauges(models):
    svc = service(models, local(models, "1", "2", champion="1", challenger="2"))
    svc.set_rollout("canary", share=0.25)
    svc.set_gauge("loopkit_feature_psi", 0.31, {"feature": "user_prior_ctr"})
    with pytest.raises(ValueError, match="not a Prometheus name"): svc.set_gauge("bad name", 1.0)
    with pytest.raises(ValueError, match="needs a number"): svc.set_gauge("loopkit_x", float("nan"))
    text = svc.metrics_text()
    for line in ('loopkit_feature_psi{feature="user_prior_ctr"} 0.31', "loopkit_rollout_share 0.25", 'loopkit_rollout_mode{mode="canary"} 1.0',
                 'loopkit_model_info{alias="challenger",version="2"} 1.0', '# TYPE loopkit_request_latency_seconds histogram'):
        assert line in text, line
