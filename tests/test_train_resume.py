"A training process SIGKILLed mid-epoch resumes from its newest step checkpoint and ends exactly where an uninterrupted run ends."
import os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch

from loopkit.training.fit import fit
from conftest import click_table

SETTINGS = dict(model="deepfm", max_epochs=3, batch_size=200, lr=0.02, seed=7, patience=5,
                checkpoint_every_n_steps=4, config={"embed_dim": 4, "hidden": [16]})
KILL_AT_STEP = 15  # epoch 1 (10 batches an epoch), after the step-12 checkpoint: the steps after 12 are lost and redone
# fit runs up to 4 optimizer steps per Lightning step here (groups cut at multiples of checkpoint_every_n_steps), so the
# worker stops at the first group end at or past KILL_AT_STEP (step 16), before step 16 is checkpointed


WORKER = textwrap.dedent('''
    import sys, time, json, lightning as L
    from loopkit.training.fit import fit
    table, spec, out_dir, marker, settings, kill_at = sys.argv[1:7]
    class StopHere(L.Callback):  # stands for a crash: announce, then hang until SIGKILLed
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step >= int(kill_at):
                open(marker, "w").write("ready"); time.sleep(600)
    fit(table, json.loads(spec), out_dir=out_dir, callbacks=[StopHere()], **json.loads(settings))
''')


def final_state(out_dir:Path) -> dict:
    "Weights and optimizer state of the last epoch-end checkpoint."
    ckpt = torch.load(out_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return {"state_dict": ckpt["state_dict"], "optimizer": ckpt["optimizer_states"][0]["state"], "step": ckpt["global_step"]}


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    import json
    spec = click_table(tmp_path / "table.parquet")
    reference = fit(tmp_path / "table.parquet", spec, out_dir=tmp_path / "reference", **SETTINGS)

    run_dir, marker = tmp_path / "run", tmp_path / "killed-here"
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "table.parquet"), json.dumps(spec), str(run_dir),
                             str(marker), json.dumps(SETTINGS), str(KILL_AT_STEP)])
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, f"the training process ended with {proc.returncode} before reaching step {KILL_AT_STEP}"
            assert time.time() < deadline, "the training process did not reach the kill point in 120 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None: proc.kill()
    assert proc.returncode == -signal.SIGKILL
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "step=12.ckpt" in names, names  # the newest step checkpoint, mid-epoch 1
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 10  # end of epoch 0

    resumed = fit(tmp_path / "table.parquet", spec, out_dir=run_dir, **SETTINGS)

    pd.testing.assert_frame_equal(resumed.history, reference.history, check_exact=True)
    assert resumed.best_epoch == reference.best_epoch
    for name, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), f"best-epoch weight {name} differs after resume"
    want, got = final_state(tmp_path / "reference"), final_state(run_dir)
    assert got["step"] == want["step"] == 30
    for name, value in want["state_dict"].items():
        assert torch.equal(got["state_dict"][name], value), f"final weight {name} differs after resume"
    for i, state in want["optimizer"].items():
        for key, value in state.items():
            assert torch.equal(got["optimizer"][i][key], value), f"Adam state {key} of parameter {i} differs after resume"
