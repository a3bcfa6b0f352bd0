"Graceful degradation of `loopkit serve --degrade` under a bounded overload on loopback: no failed request, p99 within the objective, the steps down and back up in the metrics and the status."
import time

import httpx
import pytest

from conftest import served_process
from loopkit.serving.pressure import press, recorded_requests

KEY = "degrade-test-key-0123456789abcdef"
OBJECTIVE_MS = 250.0  # the latency objective of this test: p99 over the whole overload, its first moments included


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    "A wide DCN-v2 (about 20 ms a request of 50 candidates on one thread) and the request mix of its table."
    from loopkit.features.batch import build_table
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.ingest.synth import synth_events
    from loopkit.models.ctr import save_model
    from loopkit.training.fit import fit
    d = tmp_path_factory.mktemp("degrade")
    spec = build_table(pseudonymize_events(synth_events(3000, n_items=60, days=2, seed=8), KEY.encode()), d / "features")
    save_model(fit(d / "features" / "table.parquet", spec, model="dcnv2", max_epochs=1,
                   config={"embed_dim": 64, "hidden": (2048, 2048), "cross_layers": 6}).model, d / "slow")
    return d / "slow", recorded_requests(d / "features" / "table.parquet", n=100, candidates=50)


def metric(text, name, **labels):
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()): return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_overload_degrades_instead_of_failing_and_recovers(slow_model, tmp_path):
    model, mix = slow_model
    args = ["--model-dir", model, "--log-dir", "", "--k", "10", "--degrade", "--latency-budget-ms", "100", "--max-queue", "4",
            "--recover-after", "1"]
    with served_process(args, tmp_path, {"LOOPKIT_HMAC_KEY": KEY}) as url:
        calm = press(url, mix, rate=5, duration_s=4)              # every item scored once by the model: the popular list
        assert calm["failed"] == 0 and calm["levels"] == {"normal": 20}, calm
        capacity = 1e3 / calm["p50_ms"]
        burst = press(url, mix, rate=min(max(2.5 * capacity, 60), 200), duration_s=6, workers=64)
        assert burst["failed"] == 0, burst
        assert burst["p99_ms"] <= OBJECTIVE_MS, burst
        assert burst["levels"].get("popular", 0) > 0, burst
        m = httpx.get(url + "/metrics").text
        assert metric(m, "loopkit_degradation_steps_total", to="popular") >= 1 and metric(m, "loopkit_degraded_requests_total", level="popular") > 0
        deadline, level = time.time() + 30, None
        while time.time() < deadline:                             # light traffic: it steps back up by itself
            press(url, mix, rate=5, duration_s=1)
            level = httpx.get(url + "/status").json()["degradation"]["name"]
            if level == "normal": break
        assert level == "normal", "the service did not recover within 30 s of the overload's end"
        m = httpx.get(url + "/metrics").text
        assert metric(m, "loopkit_degradation_steps_total", to="normal") >= 1 and metric(m, "loopkit_degradation_level") == 0
