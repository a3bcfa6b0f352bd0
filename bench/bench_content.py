"""Content-safety checks against the synthetic truth, side by side in one run.

    .venv/bin/python bench/bench_content.py [--items 2000] [--seed 7]

One synthetic item world (text, images, embeddings, and the truth of every property). Each check is scored against the truth:
- lexicon (before inference): recall on explicit violations (terms disguised) and on all violations, false-block rate on
  harmless items; and the time to match 100 candidates' texts against a 10,000-term lexicon (p50/p99 over 300 requests),
  next to a plain substring search for every term in the normal form (the naive way) for the ratio;
- risk scorer (during inference): trained on half the items, on the other half: AUC, recall and false-block at 0.5 and at
  the threshold that blocks 1 % of harmless items, and the recall of lexicon + scorer together;
- the filter's time: judging 100 candidates with verdicts cached and judged on the request, and Service.rank on 100
  candidates with and without the filter, requests alternating (p50/p99 each and the added p99);
- copyright fingerprints: precision and recall of near-copy matches, by image alone, text alone and both;
- watermarks: detection rate of marked images after JPEG re-encoding at qualities 50, 75, 90 and 95; false positives on
  unmarked images;
- alignment: recall on mismatched captions at a 5 % false-alarm rate (threshold set on the aligned items' truth), with one
  threshold per category vs one global threshold, and the unsupervised AlignmentCheck's own recall and false-alarm rate.
"""
import argparse, json, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]; sys.path.insert(0, str(ROOT))
from sklearn.metrics import roc_auc_score
from loopkit.ingest.items import synth_items
from loopkit.quality.lexicon import Lexicon, normalize
from loopkit.quality.risk import RiskScorer
from loopkit.quality.fingerprints import WorkRegistry
from loopkit.quality.watermarks import has_mark, jpeg, mark_agreement
from loopkit.quality.alignment import AlignmentCheck, alignment_scores

ap = argparse.ArgumentParser(); ap.add_argument("--items", type=int, default=2000); ap.add_argument("--seed", type=int, default=7)
args = ap.parse_args()
t0 = time.time(); w = synth_items(args.items, seed=args.seed); items, truth = w.items, w.truth
out = {"items": args.items, "build_s": round(time.time() - t0, 1)}
text = (items.title + " " + items.body).tolist(); viol = truth.violation.to_numpy(); explicit = truth.term.notna().to_numpy()
tmp = Path(tempfile.mkdtemp())
(tmp / "lex.txt").write_text("\n".join(w.lexicon)); lex = Lexicon(tmp / "lex.txt").load()
hit = np.array([bool(lex.match(t)) for t in text])
out["lexicon"] = {"recall_explicit": hit[explicit].mean(), "recall_all": hit[viol].mean(), "false_block": hit[~viol].mean()}
# 10,000 terms: the world's and made-up ones; 100 candidates per request
rng = np.random.default_rng(0)
made = {"".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(rng.integers(6, 11)))) for _ in range(12_000)}
big = sorted(set(w.lexicon) | set(sorted(made)[:10_000 - len(w.lexicon)]))
(tmp / "big.txt").write_text("\n".join(big)); lexbig = Lexicon(tmp / "big.txt", reload_every=3600).load()
keys = [normalize(t) for t in big]
ac, naive = [], []
for r in range(300):
    batch = [text[i] for i in rng.integers(0, len(text), 100)]
    s = time.perf_counter(); [lexbig.match(t) for t in batch]; ac.append(time.perf_counter() - s)
    if r < 10:
        s = time.perf_counter(); [[k for k in keys if k in n] for n in map(normalize, batch)]; naive.append(time.perf_counter() - s)
out["lexicon_100_candidates_10k_terms_ms"] = {"aho_corasick_p50": 1e3 * np.percentile(ac, 50), "aho_corasick_p99": 1e3 * np.percentile(ac, 99),
                                              "naive_p50": 1e3 * np.percentile(naive, 50), "ratio_p50": np.percentile(naive, 50) / np.percentile(ac, 50)}
# the service's filter on 100 candidates: catalogue judged in advance (warm) vs every candidate judged on the request (cold)
from loopkit.serving.safety import ContentFilter
half = len(text) // 2
scorer_all = RiskScorer().fit(text[:half], viol[:half])
filt = ContentFilter(Lexicon(tmp / "big.txt", reload_every=3600), scorer_all).set_items(items)
warm, cold = [], []
for r in range(300):  # the catalogue was judged when it was set: each request looks its verdicts up
    cands = [{"item_id": int(i)} for i in rng.choice(len(items), 100, replace=False)]
    s = time.perf_counter(); filt.judge(cands); warm.append(time.perf_counter() - s)
for r in range(60):  # every candidate judged on the request: lexicon and scorer on 100 texts
    cands = [{"item_id": int(i)} for i in rng.choice(len(items), 100, replace=False)]
    filt.cache_.clear(); s = time.perf_counter(); filt.judge(cands); cold.append(time.perf_counter() - s)
out["filter_100_candidates_10k_terms_ms"] = {"cached_p50": 1e3 * np.percentile(warm, 50), "cached_p99": 1e3 * np.percentile(warm, 99),
                                             "uncached_p50": 1e3 * np.percentile(cold, 50), "uncached_p99": 1e3 * np.percentile(cold, 99)}
# the same filter inside the service: Service.rank on 100 candidates (k=10) with and without it, requests alternating
from loopkit.features.batch import build_table
from loopkit.features.online import OnlineFeatures
from loopkit.ingest.privacy import pseudonymize_events
from loopkit.ingest.synth import synth_events
from loopkit.models.ctr import save_model
from loopkit.serving.service import Service
from loopkit.serving.sources import LocalModels
from loopkit.training.fit import fit
KEY = b"bench-content-key-0123456789abcdef"
spec = build_table(pseudonymize_events(synth_events(3000, n_items=len(items), days=2, seed=1), KEY), tmp / "features")
save_model(fit(tmp / "features" / "table.parquet", spec, model="lr", max_epochs=1).model, tmp / "model")
plain_svc = Service(LocalModels({"1": tmp / "model"}), OnlineFeatures(), key=KEY, k=10, max_skew=None)
safe_svc = Service(LocalModels({"1": tmp / "model"}), OnlineFeatures(), key=KEY, k=10, max_skew=None, content=filt)
cats = items.category.tolist(); times = {"without": [], "with": []}
for r in range(400):
    cands = [{"item_id": int(i), "category": cats[i]} for i in rng.choice(len(items), 100, replace=False)]
    for name, svc in (("without", plain_svc), ("with", safe_svc)) if r % 2 else (("with", safe_svc), ("without", plain_svc)):
        s = time.perf_counter(); svc.rank(f"user{r % 50}", cands, ts=1_767_400_000 + r); times[name].append(time.perf_counter() - s)
times = {k: np.array(v[20:]) for k, v in times.items()}  # the first requests warm the model up
out["service_rank_100_candidates_ms"] = {f"{k}_{q}": 1e3 * np.percentile(v, int(q[1:])) for k, v in times.items() for q in ("p50", "p99")}
out["service_rank_100_candidates_ms"]["added_p99"] = 1e3 * (np.percentile(times["with"], 99) - np.percentile(times["without"], 99))
p = scorer_all.score(text[half:]); y = viol[half:]
t1 = np.quantile(p[~y], 0.99)
out["risk"] = {"auc": roc_auc_score(y, p), "recall_at_0.5": (p[y] > 0.5).mean(), "false_block_at_0.5": (p[~y] > 0.5).mean(),
               "recall_at_1pct_false_block": (p[y] > t1).mean(), "recall_implicit_at_0.5": (p[y & ~explicit[half:]] > 0.5).mean(),
               "lexicon_or_risk_recall": (hit[half:][y] | (p[y] > 0.5)).mean(), "lexicon_or_risk_false_block": (hit[half:][~y] | (p[~y] > 0.5)).mean()}
copies = truth.copy_of.notna().to_numpy()
res = {}
for name, reg in [("image", WorkRegistry(min_similarity=1.01)), ("text", WorkRegistry(max_distance=-1)), ("both", WorkRegistry())]:
    f = reg.fit(w.works).check(items); m = f.match.to_numpy()
    right = m & copies & (pd.to_numeric(f.work_id, errors="coerce").to_numpy() == truth.copy_of.astype("float").to_numpy())
    res[name] = {"precision": right.sum() / max(1, m.sum()), "recall": right.sum() / copies.sum()}
out["fingerprints"] = res
marked = truth.item_id[truth.aigc].to_numpy()[:150]; plain = truth.item_id[~truth.aigc].to_numpy()[:300]
out["watermark"] = {f"detect_jpeg_q{q}": np.mean([has_mark(jpeg(items.image[i], q)) for i in marked]) for q in (50, 75, 90, 95)}
out["watermark"]["detect_png"] = np.mean([has_mark(items.image[i]) for i in marked])
out["watermark"]["false_positive_png"] = np.mean([has_mark(items.image[i]) for i in plain])
out["watermark"]["false_positive_jpeg_q75"] = np.mean([has_mark(jpeg(items.image[i], 75)) for i in plain])
s = alignment_scores(items); mis = truth.mismatch.to_numpy(); cat = items.category.to_numpy()
glob = np.quantile(s[~mis], 0.05)
per = {c: np.quantile(s[~mis & (cat == c)], 0.05) for c in np.unique(cat)}
flag_per = s < np.array([per[c] for c in cat])
chk = AlignmentCheck().fit(s, cat).flag(s, cat)
out["alignment"] = {"recall_at_5pct_fa_per_category": flag_per[mis].mean(), "fa_per_category": flag_per[~mis].mean(),
                    "recall_at_5pct_fa_global": (s < glob)[mis].mean(), "check_recall": chk[mis].mean(), "check_false_alarm": chk[~mis].mean()}
print(json.dumps(out, indent=1, default=lambda v: round(float(v), 4)))
