"""Two `loopkit serve` replicas over one registry and one Redis for their online state: an alias move reaches both within
2 s under load with no failed request, and a user's arm in a canary is the same on both."""
import threading, time

import httpx
import pytest
from conftest import served_process

KEY = "replicas-test-hmac-key-0123456789"
TOKEN = "replicas-admin-token-0123456789"
CANDIDATES = [{"item_id": i, "category": ["news", "sports", "music"][i % 3]} for i in range(20)]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    "A registry with v1 (champion) and v2 (no alias), two small models trained on the same synthetic events."
    from loopkit.features.batch import build_table
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.ingest.synth import synth_events
    from loopkit.models.ctr import save_model
    from loopkit.registry import register
    from loopkit.training.fit import fit
    import pyarrow.parquet as pq
    d = tmp_path_factory.mktemp("replicas")
    events = pseudonymize_events(synth_events(3000, n_items=20, days=2, seed=4), KEY.encode())
    pq.write_table(events, d / "events.parquet")
    spec = build_table(events, d / "features")
    uri = f"sqlite:///{d / 'mlflow.db'}"
    for version, (model, auc) in enumerate((("lr", 0.7), ("fm", 0.6)), 1):
        save_model(fit(d / "features" / "table.parquet", spec, model=model, max_epochs=1).model, d / f"v{version}")
        assert register(d / f"v{version}", {"auc": auc}, name="ctr", tracking_uri=uri)["version"] == version
    return d, uri


def _replicas(registry, redis_url, *extra, port=None):
    "Two replicas (on one shared port when given): the first warms the shared online state from the events, the second finds it in Redis."
    d, uri = registry
    env = {"LOOPKIT_HMAC_KEY": KEY, "LOOPKIT_ADMIN_TOKEN": TOKEN}
    common = ["--registry-uri", uri, "--model-name", "ctr", "--log-dir", "", "--k", "5", "--explore", "0", "--poll-interval", "0.5",
              "--max-skew", "none", *extra]
    prefix = f"?prefix=replicas-{time.time_ns()}:"
    first = served_process([*common, "--cache-dir", d / "cache-a", "--state", redis_url + prefix, "--events", d / "events.parquet"], d, env, port)
    second = served_process([*common, "--cache-dir", d / "cache-b", "--state", redis_url + prefix], d, env, port)
    return first, second


def test_an_alias_move_reaches_every_replica_within_2s_under_load(registry, redis_url):
    from mlflow import MlflowClient
    _, uri = registry
    first, second = _replicas(registry, redis_url)
    with first as a, second as b:
        failures, served, stop = [], [], threading.Event()

        def load(url, seed):
            with httpx.Client(base_url=url, timeout=10) as client:
                i = 0
                while not stop.is_set():
                    r = client.post("/rank", json={"user": f"user-{seed}-{i % 50}", "candidates": CANDIDATES, "ts": 1_767_400_000 + i})
                    if r.status_code != 200: failures.append((url, r.status_code, r.text))
                    else: served.append((url, time.monotonic(), r.json()["model_version"]))
                    i += 1

        threads = [threading.Thread(target=load, args=(u, s)) for s, u in enumerate((a, b, a, b))]
        for t in threads: t.start()
        try:
            time.sleep(1.0)
            assert {httpx.get(u + "/status").json()["champion"] for u in (a, b)} == {"1"}
            moved = time.monotonic()
            MlflowClient(uri, uri).set_registered_model_alias("ctr", "champion", "2")
            reached = {}
            while len(reached) < 2 and time.monotonic() - moved < 10:
                for u in (a, b):
                    if u not in reached and httpx.get(u + "/status").json()["champion"] == "2": reached[u] = time.monotonic() - moved
                time.sleep(0.05)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads: t.join(30)
        MlflowClient(uri, uri).set_registered_model_alias("ctr", "champion", "1")
    assert not failures, failures[:3]
    assert len(reached) == 2 and max(reached.values()) <= 2.0, f"seconds until each replica served v2: {reached}"
    for u in (a, b):  # every answer after the move reached that replica came from v2
        after = [v for url, t, v in served if url == u and t > moved + reached[u] + 0.1]
        assert after and set(after) == {"2"}, (u, set(after))


def test_replicas_share_one_port_and_give_a_user_one_arm(registry, redis_url):
    "Two replicas bound with --reuse-port: the kernel spreads connections over both, and a user's canary arm is the same from either."
    from conftest import free_port
    from mlflow import MlflowClient
    _, uri = registry
    MlflowClient(uri, uri).set_registered_model_alias("ctr", "challenger", "2")
    port = free_port()
    try:
        first, second = _replicas(registry, redis_url, "--reuse-port", "--rollout", "canary", "--share", "0.3", port=port)
        with first as url, second:
            replicas, arms, served_by = set(), {}, {}
            deadline = time.monotonic() + 60
            while len(replicas) < 2 and time.monotonic() < deadline:  # each fresh connection lands on one of them
                replicas.add(httpx.get(url + "/status").json()["replica"])
            assert len(replicas) == 2, replicas
            for i in range(160):
                with httpx.Client(base_url=url, timeout=10) as client:  # a new connection per request
                    who = client.get("/status").json()["replica"]
                    r = client.post("/rank", json={"user": f"person-{i % 40}", "candidates": CANDIDATES, "ts": 1_767_400_000})
                    assert r.status_code == 200, r.text
                    arms.setdefault(f"person-{i % 40}", set()).add(r.json()["arm"])
                    served_by.setdefault(f"person-{i % 40}", set()).add(who)
    finally:
        MlflowClient(uri, uri).delete_registered_model_alias("ctr", "challenger")
    assert sum(len(v) == 2 for v in served_by.values()) >= 10, served_by   # most users reached both replicas ...
    assert all(len(v) == 1 for v in arms.values()), {k: v for k, v in arms.items() if len(v) > 1}   # ... and kept one arm
    assert {a for v in arms.values() for a in v} == {"champion", "challenger"}


def test_a_users_arm_is_the_same_on_every_replica(registry, redis_url):
    from mlflow import MlflowClient
    _, uri = registry
    MlflowClient(uri, uri).set_registered_model_alias("ctr", "challenger", "2")
    try:
        first, second = _replicas(registry, redis_url, "--rollout", "canary", "--share", "0.3")
        with first as a, second as b:
            for u in (a, b):
                status = httpx.get(u + "/status").json()
                assert (status["challenger"], status["mode"], status["share"]) == ("2", "canary", 0.3), status
            arms = {}
            for u in (a, b):
                with httpx.Client(base_url=u, timeout=10) as client:
                    arms[u] = [client.post("/rank", json={"user": f"person-{i}", "candidates": CANDIDATES, "ts": 1_767_400_000}).json()["arms"][0]
                               for i in range(200)]
    finally:
        MlflowClient(uri, uri).delete_registered_model_alias("ctr", "challenger")
    assert arms[a] == arms[b]
    share = arms[a].count("challenger") / 200
    assert 0.2 < share < 0.4, share


def test_the_ramp_moves_together_on_every_replica_and_a_promotion_reaches_both(registry, redis_url):
    """Traffic reaches the first replica only, so only its checks can move the ramp; the second holds the same step within
    2 s of every move (its ticks read the shared step), and serves the promoted version within 2 s of the first."""
    from mlflow import MlflowClient
    _, uri = registry
    client = MlflowClient(uri, uri)
    client.set_registered_model_alias("ctr", "champion", "1"); client.set_registered_model_alias("ctr", "challenger", "2")
    shared = ["--shared-rollout", redis_url, "--rollout", "ramp", "--steps", "0.5,1.0", "--window", "4"]
    first, second = _replicas(registry, redis_url, *shared)
    try:
        with first as a, second as b:
            failures, stop, seen = [], threading.Event(), {a: [], b: []}

            def load():
                with httpx.Client(base_url=a, timeout=10) as c:
                    i = 0
                    while not stop.is_set():  # no ts: event time is the servers' clock, which ticks the ramp's window
                        r = c.post("/rank", json={"user": f"user-{i % 400}", "candidates": CANDIDATES})
                        if r.status_code != 200: failures.append((r.status_code, r.text))
                        i += 1

            thread = threading.Thread(target=load); thread.start()
            started = time.monotonic()
            try:
                while time.monotonic() - started < 90:
                    for u in (a, b):
                        s = httpx.get(u + "/status").json()
                        seen[u].append((time.monotonic(), s["champion"], s["mode"], s["step"]))
                    if all(seen[u][-1][1] == "2" for u in (a, b)): break
                    time.sleep(0.05)
            finally:
                stop.set(); thread.join(30)
    finally:
        client.set_registered_model_alias("ctr", "champion", "1")
        try: client.delete_registered_model_alias("ctr", "challenger")
        except Exception: pass
    assert not failures, failures[:3]

    def first_time(u, when):
        return next((t for t, *state in seen[u] if when(*state)), None)
    for label, when in (("step 1", lambda ch, mode, step: mode == "ramp" and step == 1 or ch == "2"), ("promoted", lambda ch, mode, step: ch == "2")):
        ta, tb = first_time(a, when), first_time(b, when)
        assert ta is not None and tb is not None, f"{label}: the first replica at {ta}, the second at {tb}; {seen[a][-1]} {seen[b][-1]}"
        assert abs(tb - ta) <= 2.0, f"{label}: the second replica followed {tb - ta:.2f} s after the first"


def test_a_rollback_on_one_replica_reaches_the_other_within_2s_under_load(registry, redis_url):
    from mlflow import MlflowClient
    _, uri = registry
    client = MlflowClient(uri, uri)
    client.set_registered_model_alias("ctr", "champion", "1"); client.set_registered_model_alias("ctr", "challenger", "2")
    first, second = _replicas(registry, redis_url, "--rollout", "canary", "--share", "0.5")
    try:
        with first as a, second as b:
            failures, stop = [], threading.Event()

            def load(url):
                with httpx.Client(base_url=url, timeout=10) as c:
                    i = 0
                    while not stop.is_set():
                        r = c.post("/rank", json={"user": f"user-{i % 100}", "candidates": CANDIDATES, "ts": 1_767_400_000 + i})
                        if r.status_code != 200: failures.append((url, r.status_code, r.text))
                        i += 1

            threads = [threading.Thread(target=load, args=(u,)) for u in (a, b)]
            for t in threads: t.start()
            try:
                # the precondition: both replicas serve the challenger (a replica loads it on its own schedule under load)
                deadline, states = time.monotonic() + 30, None
                while states != ["2", "2"] and time.monotonic() < deadline:
                    states = [httpx.get(u + "/status").json()["challenger"] for u in (a, b)]; time.sleep(0.1)
                assert states == ["2", "2"], states
                r = httpx.post(a + "/admin/retire", json={"why": "a planted failure"}, headers={"Authorization": f"Bearer {TOKEN}"})
                assert r.status_code == 200, r.text
                retired, reached = time.monotonic(), None
                while reached is None and time.monotonic() - retired < 10:
                    if httpx.get(b + "/status").json()["challenger"] is None: reached = time.monotonic() - retired
                    time.sleep(0.05)
                time.sleep(0.3)
            finally:
                stop.set()
                for t in threads: t.join(30)
    finally:
        client.set_registered_model_alias("ctr", "champion", "1")
    assert not failures, failures[:3]
    assert reached is not None and reached <= 2.0, f"the second replica dropped the challenger after {reached} s"
    assert client.get_registered_model("ctr").aliases.get("challenger") is None


def test_the_redis_rollout_answers_as_the_in_process_one(redis_url):
    import redis
    from loopkit.serving.control import RedisRollout, SharedRollout
    mine, shared = SharedRollout(), RedisRollout(redis.Redis.from_url(redis_url), f"rollout-test-{time.time_ns()}:")
    def run(board):
        return [board.read("7"), board.join("7"), board.start_clock("7", 100.0), board.start_clock("7", 150.0),
                board.advance("7", 0, 200.0), board.advance("7", 0, 250.0),  # a second replica, one step late: no move
                board.advance("7", 1, 300.5), board.read("7"), board.join("7"), board.join("7", restart=True), board.advance("8", 0, 5.0)]
    assert run(shared) == run(mine) == [None, (0, None), (0, 100.0), (0, 100.0), (1, 200.0), (1, 200.0), (2, 300.5), (2, 300.5),
                                        (2, 300.5), (0, None), (1, 5.0)]
