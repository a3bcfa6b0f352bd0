"The pressure test before any traffic: a challenger many times slower than the champion is registered without an alias, gets no request and cannot be promoted; one that is as fast becomes the challenger."
import shutil

import numpy as np
import pytest

KEY = b"pressure-test-key-0123456789abcd"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    "An lr champion, a copy of it, and a wide DCN-v2 that costs many times its CPU per request; the features table."
    from loopkit.features.batch import build_table
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.ingest.synth import synth_events
    from loopkit.models.ctr import save_model
    from loopkit.training.fit import fit
    d = tmp_path_factory.mktemp("pressure")
    spec = build_table(pseudonymize_events(synth_events(3000, n_items=60, days=2, seed=8), KEY), d / "features")
    table = d / "features" / "table.parquet"
    save_model(fit(table, spec, model="lr", max_epochs=1).model, d / "lr")
    shutil.copytree(d / "lr", d / "same")
    save_model(fit(table, spec, model="dcnv2", max_epochs=1, config={"embed_dim": 64, "hidden": (2048, 2048), "cross_layers": 6}).model, d / "slow")
    return d


def test_a_slow_challenger_never_gets_traffic(models, tmp_path, monkeypatch):
    from loopkit.features.online import OnlineFeatures
    from loopkit.registry import alias_version, lineage, promote, register
    from loopkit.serving.pressure import pressure_check, recorded_requests
    from loopkit.serving.service import Service
    from loopkit.serving.sources import RegistryModels
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    blessed = {"verdict": "blessed", "checks": []}
    assert register(models / "lr", {"auc": 0.60}, tracking_uri=uri)["alias"] == "champion"
    settings = dict(tracking_uri=uri, table=models / "features" / "table.parquet", rate=20, slo_p99_ms=500, max_cpu_ratio=1.5, duration_s=2)

    slow = pressure_check(models / "slow", **settings)
    assert slow["verdict"] == "failed" and slow["champion_version"] == 1, slow
    assert slow["cpu_ratio"] > 5, f"the planted challenger is only {slow['cpu_ratio']:.1f}x the champion's CPU per request"
    assert any("CPU per request" in r for r in slow["reasons"]), slow["reasons"]
    reg = register(models / "slow", {"auc": 0.65}, tracking_uri=uri, gate=blessed, pressure=slow)
    assert reg["alias"] is None and reg["pressure"] == "failed"
    assert alias_version("loopkit-ctr", "challenger", uri) is None
    kept = lineage("loopkit-ctr", 2, uri)
    assert kept["tags"]["loopkit.pressure"] == "failed" and "lineage/pressure.json" in kept["files"]
    with pytest.raises(ValueError, match="failed its pressure test"): promote(version=2, tracking_uri=uri)
    svc = Service(RegistryModels("loopkit-ctr", uri, tmp_path / "cache"), OnlineFeatures(), key=KEY, k=5, max_skew=None)
    for r in recorded_requests(models / "features" / "table.parquet", n=30, candidates=20):
        assert svc.rank(**r)["model_version"] == "1"
    assert svc.status()["arms"].get("challenger", {}).get("requests", 0) == 0

    fine = pressure_check(models / "same", **settings)
    assert fine["verdict"] == "passed", fine
    assert np.isclose(fine["challenger"]["sent"], 40) and fine["challenger"]["failed"] == 0
    assert register(models / "same", {"auc": 0.61}, tracking_uri=uri, gate=blessed, pressure=fine)["alias"] == "challenger"
