"Content safety in the running service: `loopkit serve` with the filter's files under concurrent load; what it blocked and demoted, by reason, in the responses, the log and the metrics; the cap on unreviewed exposure; reviews and terms changed while it runs."
import re, time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest

from conftest import served_process
from loopkit.ingest.items import CATEGORY_WORDS, FILLER, RISK_WORDS
from loopkit.quality.risk import RiskScorer
from loopkit.serving.log import read_log

KEY = "content-test-key-0123456789abcdef"
ADMIN = "content-admin-token-0123456789"
CAP = 0.1
CLEAN, LEXICON, RISKY, BORDER, HELD, LATER_REVIEWED, LATER_TERM, NEW = 0, 3, 4, 5, 6, 7, 8, 99


def clean_text(rng, n=8):
    words = CATEGORY_WORDS["food"].split() + CATEGORY_WORDS["travel"].split() + FILLER
    return " ".join(rng.choice(words, n))


@pytest.fixture(scope="module")
def served_files(tmp_path_factory):
    "A small lr model, a risk scorer trained on clean vs risky texts, a term file, the catalogue, holds and reviews; the thresholds from the scorer's own scores."
    from loopkit.features.batch import build_table
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.ingest.synth import synth_events
    from loopkit.models.ctr import save_model
    from loopkit.training.fit import fit
    d = tmp_path_factory.mktemp("content")
    spec = build_table(pseudonymize_events(synth_events(3000, n_items=40, days=2, seed=5), KEY.encode()), d / "features")
    save_model(fit(d / "features" / "table.parquet", spec, model="lr", max_epochs=1).model, d / "model")
    rng = np.random.default_rng(0)
    risky = [" ".join([*rng.choice(RISK_WORDS, 5), *rng.choice(FILLER, 3)]) for _ in range(200)]
    scorer = RiskScorer().fit([clean_text(rng) for _ in range(200)] + risky, [0] * 200 + [1] * 200).save(d / "risk")
    texts = {i: clean_text(rng) for i in range(9)}
    texts[LEXICON] = "grill brunch with Z.O.R-V 3 X tonight"                # the term 'zorvex', disguised
    texts[RISKY] = "guaranteed payout wire cashout winnings urgent verify password"
    texts[BORDER] = "ramen brunch giveaway bonus urgent with the best grill"  # a few risk words among harmless ones
    texts[LATER_TERM] += " velvetine"
    items = pd.DataFrame({"item_id": list(texts), "category": "food", "title": [texts[i] for i in texts], "tags": "", "body": ""})
    items.to_parquet(d / "items.parquet")
    (d / "terms.txt").write_text("# sensitive terms\nzorvex\nquintbarrow\n")
    pd.DataFrame({"item_id": [HELD]}).to_parquet(d / "holds.parquet")
    pd.DataFrame({"item_id": [CLEAN], "decision": ["ok"]}).to_parquet(d / "reviews.parquet")
    s = dict(zip(items.item_id, RiskScorer.load(d / "risk").score(items.title.tolist())))
    harmless = max(v for i, v in s.items() if i not in (RISKY, BORDER, LEXICON))
    assert s[RISKY] > s[BORDER] > harmless, f"the scorer does not order risky > borderline > harmless: {s}"
    return dict(dir=d, block_at=(s[RISKY] + s[BORDER]) / 2, demote_at=(s[BORDER] + harmless) / 2)


def metric(text, name, **labels):
    "The value of one Prometheus sample in /metrics text (0 when absent)."
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()): return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_service_filters_before_it_ranks_under_load(served_files, tmp_path):
    "Blocked items never served, the demoted one always last, the new item within the cap, counts by reason in metrics and log; reviews and terms reach it live."
    d = served_files["dir"]
    args = ["--model-dir", d / "model", "--log-dir", tmp_path / "log", "--k", "7", "--poll-interval", "3600",
            "--lexicon", d / "terms.txt", "--risk-model", d / "risk", "--items", d / "items.parquet", "--holds", d / "holds.parquet",
            "--reviews", d / "reviews.parquet", "--block-at", served_files["block_at"], "--demote-at", served_files["demote_at"],
            "--unreviewed-cap", CAP]
    candidates = [{"item_id": i, "category": "food"} for i in [*range(9), NEW]]
    with served_process(args, tmp_path, {"LOOPKIT_HMAC_KEY": KEY, "LOOPKIT_ADMIN_TOKEN": ADMIN}) as url:
        def rank(i):
            with httpx.Client(timeout=30) as client:
                return [client.post(url + "/rank", json={"user": f"user-{i}-{j}", "candidates": candidates}) for j in range(40)]
        with ThreadPoolExecutor(8) as pool: responses = [r for batch in pool.map(rank, range(8)) for r in batch]
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200][:3]
        served = [r.json()["items"] for r in responses]
        assert not {LEXICON, RISKY, HELD} & {i for items in served for i in items}, "a blocked item was served"
        assert all(items[-1] == BORDER for items in served), "the demoted item is not ranked after every other item"
        shown = sum(map(len, served)); new = sum(items.count(NEW) for items in served)
        assert 0 < new <= CAP * shown, f"the unreviewed item got {new} of {shown} impressions (cap {CAP})"
        m = httpx.get(url + "/metrics").text
        n = len(responses)
        for action, reason in [("blocked", "lexicon"), ("blocked", "risk"), ("blocked", "copyright"), ("demoted", "risk")]:
            assert metric(m, "loopkit_filtered_total", action=action, reason=reason) == n, (action, reason, m[-2000:])
        assert 0 < metric(m, "loopkit_unreviewed_impression_share") <= CAP

        # while it runs: a reviewer's decision and a new term
        pd.DataFrame({"item_id": [CLEAN, LATER_REVIEWED], "decision": ["ok", "violation"]}).to_parquet(d / "reviews.parquet")
        with open(d / "terms.txt", "a") as f: f.write("velvetine\n")
        deadline, later = time.time() + 15, []
        while time.time() < deadline:
            items = httpx.post(url + "/rank", json={"user": "late", "candidates": candidates}).json()["items"]
            later.append(items)
            if LATER_REVIEWED not in items and LATER_TERM not in items: break
            time.sleep(0.2)
        assert LATER_REVIEWED not in later[-1] and LATER_TERM not in later[-1], "a new review or term did not reach the running service in 15 s"
        assert httpx.post(url + "/admin/flush", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200

    log = read_log(tmp_path / "log").to_pandas()
    filtered = log[log.event.isin(["blocked", "demoted"])].groupby(["event", "reason", "item_id"]).size()
    total = n + len(later)
    assert filtered[("blocked", "lexicon", LEXICON)] == total and filtered[("blocked", "risk", RISKY)] == total
    assert filtered[("blocked", "copyright", HELD)] == total and filtered[("demoted", "risk", BORDER)] == total
    assert filtered[("blocked", "review", LATER_REVIEWED)] >= 1 and filtered[("blocked", "lexicon", LATER_TERM)] >= 1
    assert not log.event.eq("impression").pipe(lambda m: log[m].item_id.isin([LEXICON, RISKY, HELD]).any())
    assert not re.search(r"user-\d+-\d+", log.to_csv()), "a raw user id is in the serving log"
