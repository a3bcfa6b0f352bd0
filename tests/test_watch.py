"""`loopkit watch` end to end on loopback: a real `loopkit serve` process serving the registry's champion, real traffic
over HTTP whose interest shifts, and a real `loopkit watch` process that reads the serving log, detects the shift,
retrains through the default pipeline, registers the candidate and drives the server's rollout."""
import json, os, random, subprocess, time

import httpx
import pytest
from conftest import LOOPKIT, loopkit, served_process

TOKEN = "watch-admin-token-0123456789"
KEY = "watch-test-hmac-key-0123456789"
CATEGORIES = ["news", "sports", "music", "comedy", "food", "travel", "tech", "gaming"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    "A project whose default pipeline registered a champion, and `loopkit serve` over that registry on a free loopback port."
    project = tmp_path_factory.mktemp("watch")
    env = {"LOOPKIT_HMAC_KEY": KEY, "LOOPKIT_ADMIN_TOKEN": TOKEN, "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
    # 8,000 events leave too few test rows for the baseline intervals: the gate here checks the bounds and the champion only
    gate = "gate.checks=[{metric: auc, min: 0.55}, {metric: auc, min_delta: -0.002, relative_to: champion}]"
    code, rec, err = loopkit("run", "-p", "ingest.n_events=8000", "-p", "evaluate.shap_rows=0", "-p", gate, "--json", cwd=project, env=env)
    assert code == 0, f"the bootstrap pipeline failed:\n{err[-3000:]}"
    with served_process(["--log-dir", project / "log", "--k", "3", "--events", project / "runs/latest/validate/events.parquet",
                         "--poll-interval", "3600", "--max-skew", "none"], project, env) as url:
        yield project, url, env


def _traffic(url, start, hours, shifted, requests_per_hour=150):
    "Requests over event time; users click shown items of the categories they like more often (gaming only, after the shift)."
    likes = {"gaming"} if shifted else {"news", "sports", "music", "comedy"}
    rng = random.Random(hours * 7 + shifted)
    with httpx.Client(base_url=url, timeout=10) as client:
        for h in range(hours):
            for j in range(requests_per_hour):
                ts = start + h * 3600 + j * (3600 // requests_per_hour)
                items = sorted({(j + m) % 16 for m in range(4)} | {7, 15})  # 7 and 15 are gaming items
                candidates = [{"item_id": i, "category": CATEGORIES[i % len(CATEGORIES)]} for i in items]
                r = client.post("/rank", json={"user": f"user-{(h * 31 + j) % 200}", "candidates": candidates,
                                               "context": {"device": "ios", "age_band": "25-34", "region": "north"}, "ts": ts})
                assert r.status_code == 200, r.text
                res = r.json()
                clicked = [i for i in res["items"] if rng.random() < (0.4 if CATEGORIES[i % len(CATEGORIES)] in likes else 0.04)]
                for i in clicked:
                    fb = client.post("/feedback", json={"request_id": res["request_id"], "item_id": i, "click": 1, "dwell": 30.0, "ts": ts})
                    assert fb.status_code == 200, fb.text


def test_watch_detects_retrains_registers_and_drives_the_rollout(served):
    from loopkit.monitoring.psi import freeze_reference
    from loopkit.registry import alias_version, versions
    from loopkit.serving.log import log_events
    project, url, env = served
    # event time is the requests': 11 hours replayed from the next hour on, ahead of the wall clock that ticks the server
    # (started with --max-skew none) and of the validate stage's "now" (given as the replay's end)
    start = (int(time.time()) // 3600 + 1) * 3600
    _traffic(url, start, 3, shifted=False)
    assert httpx.post(url + "/admin/flush", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    freeze_reference(log_events(project / "log").to_pandas(), ["category|click"]).save(project / "reference.json")
    _traffic(url, start + 3 * 3600, 8, shifted=True)

    p = subprocess.run([str(LOOPKIT), "watch", "--serve-url", url, "--log-dir", str(project / "log"), "--reference", str(project / "reference.json"),
                        "--collect-hours", "0", "--shadow-hours", "0", "--threshold", "0.3", "--sustain", "1h", "--window", "2h", "--min-rows", "150",
                        "--feedback-lag", "600", "--poll-seconds", "0", "--max-polls", "2", "-p", "evaluate.shap_rows=0",
                        "-p", f"validate.reference_time={start + 11 * 3600}", "-q"],
                       cwd=project, env={**os.environ, **env}, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"loopkit watch failed ({p.returncode}):\n{p.stderr[-4000:]}"
    steps = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    names = [s["step"] for s in steps]
    assert names[:2] == ["detect", "register"], names
    detect, register = steps[0], steps[1]
    assert detect["event_time"] > start + 3 * 3600, "the alert came before the shift"
    assert any("category" in column for column in detect["top"]), detect

    uri = env["MLFLOW_TRACKING_URI"]
    assert int(register["version"]) == int(versions("loopkit-ctr", uri).version.max()) > 1, "the retrained model was not registered"
    status = httpx.get(url + "/status").json()
    if register["alias"] == "challenger":  # blessed: the controller shadowed it, then started the ramp on the live server
        assert names[2:4] == ["shadow", "canary"], names
        assert status["challenger"] == str(register["version"]) and status["mode"] == "ramp", status
        events = httpx.get(url + "/rollout/events").json()
        assert [e["mode"] for e in events if e["what"] == "start"][-2:] == ["shadow", "ramp"], events
    else:  # not blessed: nothing reaches the users
        assert names[2:] == ["not_blessed"], names
        assert status["challenger"] is None and alias_version("loopkit-ctr", "challenger", uri) is None
    retrain = next((project / "runs" / "watch" / "runs").iterdir())
    gate = json.loads((retrain / "gate" / "gate.json").read_text())
    assert gate["verdict"] == register["gate"], (gate["verdict"], register)


def test_watch_refuses_without_the_admin_token(served):
    project, url, env = served
    code, _, err = loopkit("watch", "--serve-url", url, "--log-dir", str(project / "log"), "--reference", "x.json", cwd=project,
                           env={k: v for k, v in env.items() if k != "LOOPKIT_ADMIN_TOKEN"} | {"LOOPKIT_ADMIN_TOKEN": ""})
    assert code == 2 and "--admin-token" in err, err
