"""Training batches: a function of the seed and the step, the same from any number of workers."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from streamden.config import to_dict
from streamden.models.weights import load_weights, read_metadata
from streamden.train.batches import BatchMaker, batch_stream
from streamden.train.config import DataConfig, NoiseConfig, TrainConfig
from streamden.train.trainer import train
from tests.media import make_image_sequence
from tests.train import tiny_bank, tiny_config


@pytest.fixture(scope="module")
def maker():
    # Every kind of window the realistic configs draw (x264 runs inside the workers), aligned by flow.
    cfg = TrainConfig(seed=7, batch=3, data=DataConfig(patch=32, still_fraction=0.5),
                      noise=NoiseConfig(model="mix", mix=["gaussian", "camera", "compressed", "camera+compressed"]))
    cfg.align.mode = "flow"
    return BatchMaker(tiny_bank(stills=2), cfg)


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_workers_give_the_stream_of_the_training_process_in_step_order(maker):
    alone = list(batch_stream(maker, 0, 5))
    shared = list(batch_stream(maker, 0, 5, workers=2))
    assert len(shared) == 5 and all(_same(a, b) for a, b in zip(alone, shared))
    clean, noisy, noise_map = alone[0]
    assert clean.shape == noisy.shape == (3, 5, 3, 32, 32) and noise_map.shape == (3, 1, 32, 32)
    assert not _same(alone[0], alone[1])                        # steps differ
    assert (noisy - clean).abs().mean() > 0.005                 # and carry noise


def test_a_batch_depends_on_its_step_not_on_where_the_stream_began(maker):
    # what a resumed run relies on: no sampler or generator state in the checkpoint
    late = next(batch_stream(maker, 3, 5, workers=1))
    assert _same(late, maker.make(3))


def test_training_with_workers_matches_training_without(tmp_path):
    clip_dir = make_image_sequence(tmp_path / "clip" / "c", frames=7, size=(40, 40))
    runs = [train(tiny_config(tmp_path / f"w{n}", clip_dir, steps=4, val_every=0, checkpoint_every=0,
                              data=DataConfig(videos=[str(clip_dir)], patch=32, still_fraction=0.0, workers=n)),
                  log=lambda s: None) for n in (0, 2)]
    a, b = (load_weights(path)[0] for path in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_with_workers_stops_cleanly_with_a_checkpoint(tmp_path):
    # Ctrl-C reaches the whole process group, workers included: the run must still end as
    # without workers, with its weights and a checkpoint at the step it reached.
    clip_dir = make_image_sequence(tmp_path / "clip" / "c", frames=7, size=(40, 40))
    cfg = tiny_config(tmp_path, clip_dir, steps=100000, val_every=0, checkpoint_every=0, log_every=1,
                      data=DataConfig(videos=[str(clip_dir)], patch=32, still_fraction=0.0, workers=2))
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(to_dict(cfg)))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "streamden", "train", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines = []
    deadline = time.time() + 120
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("step 3/") or time.time() > deadline:
            break
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "stopped by signal" in output and "Traceback" not in output
    step = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"]
    assert 3 <= step < 100000
    assert read_metadata(tmp_path / "run" / "final.safetensors")["steps"] == str(step)
