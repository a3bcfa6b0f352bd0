"A search taken away mid-way (a spot instance preempted: SIGKILL) resumes from its study: the trials it finished are kept, the one cut short is marked failed, and only the rest run. (A preempted training stage resumes from its step checkpoint: tests/test_train_resume.py and the killed-train probe of tests/test_faults.py.)"
import os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from conftest import click_table

SPACE = {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}, "batch_size": {"type": "categorical", "choices": [64, 128]}}
N_TRIALS = 5


SEARCH = textwrap.dedent('''
    import json, sys
    from loopkit.training.search import tune
    table, spec, out_dir, space, n = sys.argv[1:6]
    tune(table, json.loads(spec), json.loads(space), n_trials=int(n), max_epochs=2, pruner="none", out_dir=out_dir, progress=False)
''')


def complete(study_db: Path) -> list:
    try: study = optuna.load_study(study_name="loopkit-tune", storage=f"sqlite:///{study_db}")
    except Exception: return []
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def test_a_preempted_search_resumes_from_its_study(tmp_path):
    import json
    from loopkit.training.search import tune
    spec = click_table(tmp_path / "table.parquet", n=6000, users=80, items=40, seed=1)
    out = tmp_path / "search"
    proc = subprocess.Popen([sys.executable, "-c", SEARCH, str(tmp_path / "table.parquet"), json.dumps(spec), str(out), json.dumps(SPACE), str(N_TRIALS)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    while len(complete(out / "optuna.db")) < 2:
        assert proc.poll() is None, f"the search ended before it was preempted: {proc.stderr.read()[-2000:]}"
        assert time.time() < deadline, "no two trials completed within 300 s"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    before = {t.number: t.params for t in complete(out / "optuna.db")}
    assert 2 <= len(before) < N_TRIALS, before

    result = tune(tmp_path / "table.parquet", spec, SPACE, n_trials=N_TRIALS, max_epochs=2, pruner="none", out_dir=out, progress=False)
    trials = result.study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == N_TRIALS, [t.state for t in trials]
    assert {t.number: t.params for t in done if t.number in before} == before, "a finished trial was run again"
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials), "a trial cut short is still marked running"
    assert len(trials) - len(done) <= 1  # at most the one trial the preemption cut short
    assert result.best_value == max(t.value for t in done)
