"""Faults and bad input: each probe is one way loopkit could lose data, serve stale or corrupt data, leak a raw user id, or let
someone in. Serving edges, the serving log, the registry's alias moves, the pipeline runner's cache and lock, killed runs,
validation rules, damaged files and planted payloads. The count of probes is in bench/RESULTS.md (Issue 14)."""
import json, os, pickle, shutil, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from fastapi.testclient import TestClient

from conftest import LOG, LOOPKIT, executed, loopkit, write_template
from loopkit.features.batch import build_table
from loopkit.features.online import OnlineFeatures
from loopkit.ingest.privacy import pseudonymize_events
from loopkit.ingest.synth import synth_events
from loopkit.models.ctr import load_model, save_model
from loopkit.pipeline import project_lock, run_pipeline, templates_dir
from loopkit.serving.http import create_app
from loopkit.serving.log import ServeLog, read_log
from loopkit.serving.service import Service
from loopkit.serving.sources import LocalModels
from loopkit.training.fit import fit

KEY = b"test-faults-key-0123456789"
ADMIN = "admin-token-for-faults-0123"
CONTEXT = {"age_band": "25-34", "region": "north", "device": "ios"}
T0 = 1_767_400_000  # 2026-01-03, event time of the serving probes


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    "A features table of 4,000 synthetic events and an lr model trained on it (saved), with 20 candidates."
    d = tmp_path_factory.mktemp("faults")
    events = pseudonymize_events(synth_events(4000, n_items=60, days=2, seed=5), KEY)
    spec = build_table(events, d / "features")
    model = fit(d / "features" / "table.parquet", spec, model="lr", max_epochs=1).model
    save_model(model, d / "v1")
    items = sorted({int(i) for i in events["item_id"].to_pylist()})[:20]
    return dict(dir=d, spec=spec, table=d / "features" / "table.parquet", candidates=[{"item_id": i, "category": "news"} for i in items])


# ---------------------------------------------------------------- serving: every field bounded at the edge

POISON = [({"item_id": 10**30}, "candidates.0.item_id"), ({"item_id": -1}, "candidates.0.item_id"),
          ({"item_id": 1, "publish_ts": 10**30}, "candidates.0.publish_ts"), ({"item_id": 1, "publish_ts": -5}, "candidates.0.publish_ts")]


@pytest.mark.parametrize("candidate,where", POISON)
def test_an_out_of_range_candidate_is_refused_at_the_edge_and_logs_nothing(small, tmp_path, candidate, where):
    svc = Service(LocalModels({"1": small["dir"] / "v1"}), OnlineFeatures(), key=KEY, log_dir=tmp_path / "log")
    with TestClient(create_app(svc, ADMIN)) as client:
        r = client.post("/rank", json={"user": "alice", "candidates": [candidate], "context": CONTEXT, "ts": T0})
        assert r.status_code == 422 and where in r.json()["detail"], r.text
        assert client.post("/rank", json={"user": "alice", "candidates": small["candidates"], "ts": T0}).status_code == 200
    assert read_log(tmp_path / "log").num_rows == 10


@pytest.mark.parametrize("ts", [1e300, -1.0, "NaN", 4e9])
def test_a_client_cannot_move_the_service_clock(small, tmp_path, ts):
    svc = Service(LocalModels({"1": small["dir"] / "v1"}), OnlineFeatures(), key=KEY, log_dir=tmp_path / "log")
    with TestClient(create_app(svc, ADMIN)) as client:
        body = client.post("/rank", json={"user": "bob", "candidates": small["candidates"], "ts": T0}).json()
        bad = client.post("/rank", content=json.dumps({"user": "bob", "candidates": small["candidates"], "ts": ts}),
                          headers={"content-type": "application/json"})
        assert bad.status_code == 422, bad.text
        assert "ts" in bad.json()["detail"]
        fb = client.post("/feedback", json={"request_id": body["request_id"], "item_id": body["items"][0], "click": 1, "ts": T0 + 1})
        assert fb.status_code == 200, fb.text   # the feedback window still counts from the real clock
        assert client.get("/healthz").json()["status"] == "ok"
    assert svc.clock_ == T0 + 1
    assert read_log(tmp_path / "log").num_rows == 11


def test_the_service_refuses_poison_without_http_too(small):
    svc = Service(LocalModels({"1": small["dir"] / "v1"}), OnlineFeatures(), key=KEY)
    from loopkit.serving.sources import RequestError
    for candidates, ts in (([{"item_id": 10**30}], T0), ([{"item_id": 1, "publish_ts": 10**30}], T0), ([{"item_id": 1, "price": float("inf")}], T0),
                           (small["candidates"], 1e300), (small["candidates"], time.time() + 86400)):
        with pytest.raises(RequestError): svc.rank("carol", candidates, CONTEXT, ts=ts)
    assert svc.clock_ < time.time() + 1


def test_one_row_the_log_cannot_hold_is_set_aside_and_takes_no_other_row(tmp_path):
    log = ServeLog(tmp_path / "log", flush_interval=60)
    valid = lambda i: dict(ts=T0 + i, event="impression", request_id=f"r{i}", user_id="u_x", item_id=i, position=0)
    log.append([valid(i) for i in range(50)] + [dict(valid(99), item_id=10**30)] + [valid(i) for i in range(50, 100)])
    log.append([dict(valid(200), publish_ts=10**30), dict(valid(201), ts=10**30)])
    assert log.flush() == 100
    assert read_log(tmp_path / "log").num_rows == 100
    rejected = [json.loads(line) for f in (tmp_path / "log" / "_rejected").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(rejected) == 3 and all(r["reason"] for r in rejected)
    assert log.health()["rejected"] == 3 and log.health()["error"] is None
    log.close()


def test_a_log_that_cannot_write_keeps_its_rows_and_health_says_degraded(small, tmp_path):
    blocked = tmp_path / "log"
    blocked.write_text("a file where the log folder should be")   # every write fails
    svc = Service(LocalModels({"1": small["dir"] / "v1"}), OnlineFeatures(), key=KEY, log_dir=blocked)
    with TestClient(create_app(svc, ADMIN)) as client:
        for i in range(3): assert client.post("/rank", json={"user": f"u{i}", "candidates": small["candidates"], "ts": T0}).status_code == 200
        with pytest.raises(OSError): svc.flush_log()
        health = client.get("/healthz").json()
        assert health["status"] == "degraded" and "cannot write" in health["problems"][0], health
        assert "loopkit_log_write_failing 1.0" in client.get("/metrics").text
        blocked.unlink()   # the disk comes back
        svc.flush_log()
        assert client.get("/healthz").json()["status"] == "ok"
    assert read_log(blocked).num_rows == 30   # nothing was lost while it failed


# ---------------------------------------------------------------- registry: rollback walks back, no-ops and unknowns refused

@pytest.fixture
def registry(small, tmp_path):
    from loopkit.registry import register
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for auc in (0.60, 0.65):   # each better than the last: v1 then v2 become champion
        register(small["dir"] / "v1", {"auc": auc}, name="m", tracking_uri=uri)
    return uri


def test_rollback_walks_back_and_refuses_beyond_the_first_champion(registry):
    from loopkit.registry import alias_version, champion_history, promote, rollback
    assert champion_history("m", registry) == [1, 2]
    assert rollback("m", tracking_uri=registry)["to"] == 1
    with pytest.raises(ValueError, match="no earlier champion"): rollback("m", tracking_uri=registry)   # not forth to v2 again
    assert alias_version("m", "champion", registry)["version"] == 1
    with pytest.raises(ValueError, match="already the champion"): rollback("m", 1, tracking_uri=registry)
    with pytest.raises(ValueError, match="already the champion"): promote("m", 1, tracking_uri=registry)
    promote("m", 2, tracking_uri=registry)
    assert rollback("m", tracking_uri=registry)["to"] == 1   # the no-op moves left no trace in the history


def test_rollback_from_the_command_line_exits_2_with_a_message(registry):
    code, _, err = loopkit("rollback", "--name", "m", "--version", "99", "--tracking-uri", registry)
    assert code == 2 and "has no version 99" in err and "Traceback" not in err
    code, _, err = loopkit("rollback", "--name", "m", "--version", "2", "--tracking-uri", registry)
    assert code == 2 and "already the champion" in err
    code, _, err = loopkit("rollback", "--name", "nobody", "--tracking-uri", registry)
    assert code == 2 and "'nobody'" in err and "Traceback" not in err


# ---------------------------------------------------------------- pipeline runner: cache by content

def test_an_output_corrupted_in_place_is_made_again_not_served(project):
    assert loopkit("run", "-q")[0] == 0
    out = project / "runs/latest/make/value.txt"
    st = out.stat()
    out.write_text("9"); os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))   # same size, same mtime
    code, rec, err = loopkit("run", "-q", "--json")
    assert code == 0 and {s["name"]: s["status"] for s in rec["stages"]}["make"] == "ran", err
    assert out.read_text() == "3" and (project / "runs/latest/double/double.txt").read_text() == "6"


def test_a_file_a_parameter_names_is_part_of_the_key(project):
    (project / "data.txt").write_text("0.087")
    write_template(project / "read.ipynb", 'source = "data.txt"  # a file of the project',
                   'import os\nopen("copy.txt", "w").write(open(os.path.join(os.environ["LOOPKIT_PROJECT_DIR"], source)).read())')
    (project / "pipeline.yaml").write_text("name: reads\nstages:\n  read:\n    template: read.ipynb\n    parameters: {source: data.txt}\n    outputs: {copy: copy.txt}\n")
    assert loopkit("run", "-q")[0] == 0
    (project / "data.txt").write_text("1.000")   # replaced, same size
    code, rec, _ = loopkit("run", "-q", "--json")
    assert code == 0 and rec["stages"][0]["status"] == "ran"
    assert (project / "runs/latest/read/copy.txt").read_text() == "1.000"


def test_library_code_is_part_of_the_key(project, monkeypatch):
    import loopkit.pipeline as lp
    assert [s.status for s in run_pipeline(project / "pipeline.yaml", progress=False).stages] == ["ran"] * 3
    monkeypatch.setattr(lp, "code_fingerprint", lambda: "another version of loopkit")
    assert [s.status for s in run_pipeline(project / "pipeline.yaml", progress=False).stages] == ["ran"] * 3


def test_the_champion_a_stage_reads_is_part_of_its_key(project, small):
    from loopkit.registry import register
    write_template(project / "compare.ipynb", 'champion = "m"  # registered model compared against', LOG, 'open("seen.txt", "w").write(champion)')
    text = (project / "pipeline.yaml").read_text() + "  compare:\n    template: compare.ipynb\n    parameters: {champion: m}\n    outputs: {seen: seen.txt}\n"
    (project / "pipeline.yaml").write_text(text)
    assert loopkit("run", "-q")[0] == 0
    assert loopkit("run", "-q")[0] == 0 and executed(project).count("compare") == 1
    register(small["dir"] / "v1", {"auc": 0.6}, name="m", tracking_uri=os.environ["MLFLOW_TRACKING_URI"])   # a new champion
    code, rec, _ = loopkit("run", "-q", "--json")
    assert code == 0 and {s["name"]: s["status"] for s in rec["stages"]} == {"make": "cached", "double": "cached", "side": "cached", "compare": "ran"}


# ---------------------------------------------------------------- pipeline runner: names, references, templates

@pytest.mark.parametrize("name", ["/tmp/loopkit-victim", "../victim", "a/../../victim", "..", "."])
def test_a_stage_name_that_is_a_path_is_refused_and_removes_nothing(project, name):
    victim = project.parent / "victim"; victim.mkdir(exist_ok=True); (victim / "keep.txt").write_text("mine")
    Path("/tmp/loopkit-victim").mkdir(exist_ok=True); Path("/tmp/loopkit-victim/keep.txt").write_text("mine")
    text = (project / "pipeline.yaml").read_text().replace("  side:", f'  "{name}":')
    (project / "pipeline.yaml").write_text(text)
    code, _, err = loopkit("run", "-q")
    assert code == 2 and "is not an identifier" in err, err
    assert (victim / "keep.txt").read_text() == "mine" and Path("/tmp/loopkit-victim/keep.txt").read_text() == "mine"
    assert executed(project) == []


@pytest.mark.parametrize("value,message", [("${make.nothing}", "names no output of an earlier stage"), ("${ghost.table}", "names no output of an earlier stage"),
                                           ("${side.label}", "names no output of an earlier stage")])
def test_a_bad_reference_on_the_command_line_exits_2(project, value, message):
    code, _, err = loopkit("run", "-q", "-p", f"double.source={value}")
    assert code == 2 and message in err and "double" in err and "KeyError" not in err, err


def test_a_template_that_is_not_a_notebook_exits_2_naming_it(project):
    (project / "make.ipynb").write_text("this is not a notebook")
    code, _, err = loopkit("run", "-q")
    assert code == 2 and "make.ipynb" in err and "stage 'make'" in err and "is not a notebook" in err, err


# ---------------------------------------------------------------- pipeline runner: one run at a time, killed runs

def test_a_second_run_in_the_project_is_refused_with_its_own_exit_code(project):
    with project_lock(project):
        code, _, err = loopkit("run", "-q")
    assert code == 3 and "another loopkit run is using the project" in err and executed(project) == []
    assert loopkit("run", "-q")[0] == 0


def test_two_runs_at_once_never_touch_each_other(project):
    write_template(project / "slow.ipynb", 'seed = 0  # differs between the two runs', 'import time; time.sleep(4)', 'open("out.txt", "w").write(str(seed))')
    (project / "pipeline.yaml").write_text("name: slow\nstages:\n  slow:\n    template: slow.ipynb\n    outputs: {out: out.txt}\n")
    start = lambda seed, *extra: subprocess.Popen([str(LOOPKIT), "run", "-q", "-p", f"slow.seed={seed}", *extra], cwd=project,
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock, deadline = project / ".loopkit" / "run.lock", time.time() + 60
    runs = [start(1)]
    while not (lock.exists() and lock.read_text().startswith("pid")) and time.time() < deadline: time.sleep(0.05)
    runs.append(start(2, "--wait", "120"))
    third = subprocess.run([str(LOOPKIT), "run", "-q", "-p", "slow.seed=3"], cwd=project, capture_output=True, text=True)
    out = [r.communicate(timeout=300) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], out
    assert third.returncode == 3 and "Traceback" not in third.stderr, third.stderr
    assert (project / "runs/latest/slow/out.txt").read_text() == "2"


def _running(uri):
    from mlflow import MlflowClient
    c = MlflowClient(uri)
    return [(r.info.run_name, r.info.status) for e in c.search_experiments() for r in c.search_runs([e.experiment_id])]


@pytest.fixture
def train_project(tmp_path, small, monkeypatch):
    "A project whose one stage is the real train template on a prepared features table."
    (tmp_path / "pipeline.yaml").write_text(f"""name: trains
stages:
  train:
    template: {templates_dir() / 'train.ipynb'}
    parameters: {{table: {small['table']}, spec: {small['dir'] / 'features' / 'spec.json'}, model: deepfm, max_epochs: 4, batch_size: 256, stream: true}}
    outputs: {{model: model}}
""")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_killed_train_resumes_from_its_checkpoint_and_orphaned_runs_are_closed(train_project):
    "A streamed fit, killed and resumed, gives the model an uninterrupted in-memory fit gives."
    p = subprocess.Popen([str(LOOPKIT), "run", "-q"], cwd=train_project, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = train_project / "runs/latest/.staging/train/checkpoints/last.ckpt"
    deadline = time.time() + 300
    while not ckpt.exists() and p.poll() is None and time.time() < deadline: time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be killed"
    os.killpg(p.pid, signal.SIGKILL); p.wait(); time.sleep(3)   # the kernel notices its parent is gone
    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert sorted(s for _, s in _running(uri)) == ["RUNNING", "RUNNING"]   # the pipeline's and train's, left open
    assert ckpt.exists()
    code, rec, err = loopkit("run", "-q", "--json")
    assert code == 0, err[-3000:]
    assert "RUNNING" not in [s for _, s in _running(uri)] and sorted(s for _, s in _running(uri)).count("KILLED") == 2
    assert not list((train_project / "runs/latest/train").glob(".loopkit-tensors-*"))  # the killed fit's scratch tensors are gone
    code, _, err = loopkit("run", "-q", "--run-dir", "runs/uninterrupted", "-p", "train.stream=false")   # read whole: the same model
    assert code == 0, err[-3000:]
    resumed = load_model(train_project / "runs/latest/train/model").state_dict()
    whole = load_model(train_project / "runs/uninterrupted/train/model").state_dict()
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert (train_project / "runs/latest/train/model/history.csv").read_text() == (train_project / "runs/uninterrupted/train/model/history.csv").read_text()


# ---------------------------------------------------------------- data validation

def test_a_sql_rule_that_is_not_one_expression_is_refused_before_it_runs(tmp_path, monkeypatch):
    from loopkit.quality.checks import parse_checks, validate
    monkeypatch.chdir(tmp_path)
    events = synth_events(500, seed=1)
    for rule in [f"TRUE), TRUE)) FROM events; COPY (SELECT 42) TO '{tmp_path}/pwned.csv';", f"1) FROM events; COPY (SELECT 42) TO '{tmp_path}/pwned.csv'; SELECT (1",
                 f"(SELECT count(*) FROM read_csv('{tmp_path}/x.csv')) > 0", "click IN (SELECT 1)", "avg(click)) FROM events GROUP BY (user_id"]:
        with pytest.raises(ValueError, match="is not one SQL expression over the events"):
            validate(events, parse_checks([{"check": "sql", "rule": rule}]))
    with pytest.raises(ValueError, match="is not one SQL expression"):
        validate(events, parse_checks([{"check": "metric", "rule": "42) FROM events; COPY (SELECT 1) TO 'pwned.csv'; SELECT (1", "min": 0}]))
    assert not list(tmp_path.glob("pwned*"))


@pytest.fixture
def two_stages(tmp_path, monkeypatch):
    "A project running the real ingest and validate templates on a parquet file of its own."
    def make(events):
        pq.write_table(events, tmp_path / "events.parquet")
        default = (templates_dir() / "pipeline.yaml").read_text()
        head = default.split("  features:")[0].replace("template: ingest.ipynb", f"template: {templates_dir() / 'ingest.ipynb'}") \
            .replace("template: validate.ipynb", f"template: {templates_dir() / 'validate.ipynb'}").replace("source: synth", "source: events.parquet")
        (tmp_path / "pipeline.yaml").write_text(head)
        return tmp_path
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("LOOPKIT_HMAC_KEY", KEY.decode())
    monkeypatch.chdir(tmp_path)
    return make


def test_future_times_fail_validation_and_coverage_is_measured_before_imputation(two_stages):
    ev = synth_events(3000, seed=2)
    ev = ev.set_column(ev.column_names.index("ts"), "ts", pa.compute.add(ev["ts"], int(time.time()) + 42 * 86400 - ev["ts"][0].as_py()))
    ev = ev.set_column(ev.column_names.index("category"), "category", pa.nulls(ev.num_rows, pa.string()))
    project = two_stages(ev)
    code, rec, err = loopkit("run", "-q", "--json")
    assert code == 1 and "ts_not_in_future" in err, err[-3000:]
    report = json.loads((project / "runs/latest/_failed/validate/report.json").read_text())
    failed = {c["name"]: c for c in report["checks"] if not c["passed"]}
    assert failed["ts_not_in_future"]["severity"] == "error"
    assert failed["coverage_category"]["observed"] == 0.0   # imputed to 'unknown' afterwards: coverage saw what arrived
    assert (project / "runs/latest/ingest/events.parquet").exists()   # the earlier stage's output is intact


def test_a_missing_label_is_a_data_message(two_stages):
    ev = synth_events(2000, seed=3)
    two_stages(ev.set_column(ev.column_names.index("click"), "click", pa.nulls(ev.num_rows, pa.int8())))
    code, _, err = loopkit("run", "-q")
    assert code == 1 and "stage 'ingest' failed" in err and "label 'click' is not 0/1" in err and "record_metrics" not in err, err[-3000:]


def test_a_damaged_parquet_page_is_refused_not_read(two_stages, tmp_path):
    project = two_stages(synth_events(20000, seed=4))
    path = project / "events.parquet"
    pq.write_table(pq.read_table(path), path, compression="none", write_page_checksum=True)
    data = bytearray(path.read_bytes()); middle = len(data) // 3
    data[middle:middle + 4000] = bytes(b ^ 0xFF for b in data[middle:middle + 4000]); path.write_bytes(bytes(data))
    code, _, err = loopkit("run", "-q")
    assert code == 1 and "is damaged" in err and "events.parquet" in err, err[-3000:]


# ---------------------------------------------------------------- deserialization: a planted payload never runs

class _Payload:
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (Path.write_text, (Path(self.marker), "pwned"))


def test_a_payload_planted_in_a_checkpoint_never_runs(small, tmp_path):
    marker = tmp_path / "pwned"
    for name in ("last.ckpt", "step=3.ckpt"):
        ckpt = tmp_path / "out" / "checkpoints" / name; ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"global_step": 10**6, "payload": _Payload(marker)}, ckpt)
    result = fit(small["table"], small["spec"], model="lr", max_epochs=1, out_dir=tmp_path / "out")
    assert not marker.exists() and len(result.history) == 1   # trained from scratch: the planted files are no place to resume from


def test_a_payload_planted_in_saved_weights_is_refused(small, tmp_path):
    marker = tmp_path / "pwned"
    shutil.copytree(small["dir"] / "v1", tmp_path / "model")
    torch.save({"payload": _Payload(marker)}, tmp_path / "model" / "weights.pt")
    with pytest.raises(Exception): load_model(tmp_path / "model")
    assert not marker.exists()


def test_nothing_loopkit_loads_is_unpickled():
    "Every torch.load in the package reads weights only; no pickle, joblib or cloudpickle load anywhere."
    import re
    src = {p: p.read_text() for p in (Path(__file__).parents[1] / "loopkit").rglob("*.py")}
    loads = [(p.name, line) for p, t in src.items() for line in t.splitlines() if "torch.load(" in line and "#" not in line.split("torch.load(")[0]]
    assert loads and all("weights_only=True" in m for _, m in loads), loads
    assert not [p.name for p, t in src.items() if re.search(r"\b(pickle|joblib|cloudpickle|dill)\.loads?\(|allow_pickle=True", t)]


# ---------------------------------------------------------------- privacy: raw ids of any shape never reach a file

def test_raw_ids_that_look_like_tokens_are_tokenized_and_reach_no_file(tmp_path):
    ev = synth_events(3000, seed=6)
    users = sorted(set(ev["user_id"].to_pylist()))
    shapes = [lambda u: f"u_{u}@example.com", lambda u: f"u_{u:024x}", lambda u: f"+1-555-{u:06d}", lambda u: f"user.{u}@corp.example"]
    raw = {u: shapes[i % len(shapes)](u) for i, u in enumerate(users)}
    ev = ev.set_column(ev.column_names.index("user_id"), "user_id", pa.array([raw[u] for u in ev["user_id"].to_pylist()]))
    pq.write_table(ev, tmp_path / "own.parquet")
    code, rec, err = loopkit("run", "default", "-q", "--json", "-p", "ingest.source=own.parquet", "-p", "train.model=lr", "-p", "train.max_epochs=1",
                             "-p", "distill.max_epochs=1", "-p", "evaluate.shap_rows=20", "-p", "evaluate.n_boot=20",
                             cwd=tmp_path, env={"MLFLOW_TRACKING_URI": "", "LOOPKIT_HMAC_KEY": KEY.decode()})
    assert code == 0, err[-4000:]
    assert any(s["name"] == "register" and s["status"] == "ran" for s in rec["stages"])
    needles = [v.encode() for v in raw.values()]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "own.parquet"]
    assert len(files) > 30 and any(".loopkit" in p.parts for p in files)
    leaked = []
    for p in files:
        blobs = [p.read_bytes()]
        if p.suffix == ".parquet":   # compressed pages: search the decoded strings too
            t = pq.read_table(p)
            blobs += ["\n".join(map(str, t[c].to_pylist())).encode() for c in t.column_names if pa.types.is_string(t.schema.field(c).type)]
        if any(n in b for b in blobs for n in needles): leaked.append(str(p.relative_to(tmp_path)))
    assert not leaked, f"raw user ids written to {leaked}"
