import csv

import pytest
import torch

from streamden.config import load_config
from streamden.errors import ConfigError
from streamden.models.weights import load_weights, read_metadata
from streamden.train.config import OptimConfig, TrainConfig
from streamden.train.trainer import export_checkpoint, loss_fn, lr_at, recalibrate_batchnorm, train
from tests.media import make_image_sequence
from tests.train import tiny_config


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_image_sequence(tmp_path_factory.mktemp("clip") / "c", frames=7, size=(40, 40))


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny steps gain nothing from two threads, and two spinning threads collapse when
    # another process holds a core; restore the process-wide setting afterwards.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_lr_schedule_is_a_function_of_the_step():
    cfg = OptimConfig(lr=1e-3, milestones=[10, 20], gamma=0.1)
    assert lr_at(0, cfg) == 1e-3 and lr_at(9, cfg) == 1e-3
    assert abs(lr_at(10, cfg) - 1e-4) < 1e-12 and abs(lr_at(25, cfg) - 1e-5) < 1e-12


def test_block_mean_term_weighs_a_colour_shift_not_zero_mean_noise():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 32, 32, generator=g)
    shifted = target + 0.02                                        # the same error energy ...
    checker = (torch.arange(32).view(1, -1) + torch.arange(32).view(-1, 1)) % 2 * 0.04 - 0.02
    speckled = target + checker                                    # ... zero mean in every block
    level = torch.tensor([10 / 255, 20 / 255])
    for kind in ("mse_mean", "mse_sum", "mse_rel"):
        plain = [loss_fn(x, target, kind, level) for x in (shifted, speckled)]
        assert torch.allclose(plain[0], plain[1])
        weighted = [loss_fn(x, target, kind, level, dc_weight=4.0, dc_block=8) for x in (shifted, speckled)]
        assert torch.allclose(weighted[0], 5 * plain[0]) and torch.allclose(weighted[1], plain[1])


def test_shipped_config_loads():
    cfg = load_config(TrainConfig, "configs/train/fastdvdnet.yaml", ["data.patch=32"])
    assert cfg.data.patch == 32 and cfg.noise.sigma_min == 5 and cfg.noise.model == "gaussian"
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(TrainConfig, "configs/train/fastdvdnet.yaml", ["optim.lrr=1"])


def test_short_run_lowers_the_loss(tmp_path, clip_dir):
    torch.manual_seed(0)
    cfg = tiny_config(tmp_path, clip_dir, steps=30)
    lines = []
    out = train(cfg, log=lines.append)
    rows = _log(tmp_path / "run" / "log.csv")
    losses = [float(r["loss"]) for r in rows]
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20, 25, 30]
    assert losses[-1] < 0.5 * losses[0]
    assert [r["val_psnr"] != "" for r in rows] == [False, True, False, True, False, True]
    assert (tmp_path / "run" / "plot.png").stat().st_size > 0
    meta = read_metadata(out)
    for key in ("architecture", "training_data", "noise_model", "sigma_range", "steps", "patch", "batch",
                "wall_time_s", "hardware", "git_commit", "val_psnr", "val_sigma"):
        assert key in meta
    assert meta["steps"] == "30" and meta["sigma_range"] == "[5.0, 55.0]"
    assert any("val_psnr" in line for line in lines)


def test_checkpoint_and_resume_continue_at_the_same_step(tmp_path, clip_dir):
    straight = train(tiny_config(tmp_path / "a", clip_dir, steps=8, val_every=0, checkpoint_every=4), log=lambda s: None)
    cfg = tiny_config(tmp_path / "b", clip_dir, steps=4, val_every=0, checkpoint_every=4)
    train(cfg, log=lambda s: None)
    ckpt = torch.load(tmp_path / "b" / "run" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 4
    with pytest.raises(ConfigError, match="resume"):
        train(cfg, log=lambda s: None)
    cfg.steps = 8
    lines = []
    resumed = train(cfg, resume=True, log=lines.append)
    assert any("resumed" in line and "step 4" in line for line in lines)
    steps = [int(r["step"]) for r in _log(tmp_path / "b" / "run" / "log.csv")]
    assert steps == [4, 5, 8]   # the first run ends at 4; the resumed one logs 5 then ends at 8
    a, _ = load_weights(straight)
    b, _ = load_weights(resumed)
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key


def test_export_writes_the_checkpoints_weight_average(tmp_path, clip_dir):
    # `streamden train --export OUT`: evaluate a long run while it goes on. At the end of a run
    # the checkpoint holds what the final weights hold: the average with `ema`, else the raw ones.
    from streamden.cli import main

    cfg = tiny_config(tmp_path, clip_dir, steps=6, val_every=0, checkpoint_every=3, ema=0.9)
    with pytest.raises(ConfigError, match="no checkpoint"):
        export_checkpoint(cfg, tmp_path / "early.safetensors")
    final = train(cfg, log=lambda s: None)
    exported = export_checkpoint(cfg, tmp_path / "now.safetensors")
    a, _ = load_weights(final)
    b, meta = load_weights(exported)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert meta["steps"] == "6" and meta["exported_from"] == "checkpoint at step 6 (weight average)"
    raw = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    assert any(not torch.equal(raw[k], a[k]) for k in a if a[k].is_floating_point())   # the average, not the raw
    config = tmp_path / "tiny.yaml"
    import yaml
    from streamden.config import to_dict
    config.write_text(yaml.safe_dump(to_dict(cfg)))
    assert main(["train", "--config", str(config), "--export", str(tmp_path / "cli.safetensors")]) == 0
    c, _ = load_weights(tmp_path / "cli.safetensors")
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_sigterm_stops_with_a_checkpoint_and_weights(tmp_path, clip_dir):
    import signal

    def log(line):
        if line.startswith("step 5/"):
            signal.raise_signal(signal.SIGTERM)   # as `kill <pid>` would

    cfg = tiny_config(tmp_path, clip_dir, steps=50, val_every=0, checkpoint_every=0, log_every=5, bn_recalibrate=2)
    out = train(cfg, log=log)
    assert out.is_file() and read_metadata(out)["steps"] == "5"
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"] == 5
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL   # handler restored


def test_batchnorm_recalibration_is_a_seeded_plain_average():
    from streamden.models.fastdvdnet import FastDVDnet
    from streamden.train.batches import BatchMaker, batch_stream
    from streamden.train.config import DataConfig
    from tests.train import tiny_bank

    stats = []
    for _ in range(2):
        torch.manual_seed(0)
        model = FastDVDnet()
        maker = BatchMaker(tiny_bank(), TrainConfig(seed=1, batch=2, data=DataConfig(patch=16, still_fraction=0.5)))
        recalibrate_batchnorm(model, batch_stream(maker, 0, 2), device=torch.device("cpu"))
        bn = model.temp2.outc.convblock[1]
        assert not model.training and bn.momentum == 0.1 and int(bn.num_batches_tracked) == 2
        stats.append(bn.running_var.clone())
    assert torch.equal(stats[0], stats[1]) and not torch.allclose(stats[0], torch.ones_like(stats[0]))


def test_realistic_validation_feeds_the_blind_estimate(tmp_path):
    # val_degradations: checkpoints are chosen on the noise users have, at the level `--sigma
    # auto` would give the network, not on Gaussian noise at a known sigma.
    from streamden.noise.degrade import effective_level
    from streamden.train.trainer import make_val_set
    from tests.train import textured

    base = torch.from_numpy(textured(64, 72, seed=3))
    clip = (torch.stack([base[:, :, t:t + 64] for t in range(7)]) * 255).round().to(torch.uint8)
    labels = ["compressed s15 x264 crf23", "camera iso3200"]
    val = make_val_set([("c", clip)], 30.0, 3, degradations=labels)
    again = make_val_set([("c", clip)], 30.0, 3, degradations=labels)
    assert len(val) == 2 and all(torch.equal(a, b) for x, y in zip(val, again) for a, b in zip(x, y))
    for (windows, levels, targets), label in zip(val, labels):
        assert windows.shape == (3, 5, 3, 64, 64) and levels.shape == (3,) and targets.shape == (3, 3, 64, 64)
        assert torch.equal(windows[1, 1], windows[0, 2])          # consecutive windows of one degraded clip
        effective = effective_level(windows[:, 2], targets)
        assert 0.6 * effective < float(levels.mean()) < 1.5 * effective, (label, levels, effective)
    gaussian = make_val_set([("c", clip)], 30.0, 3)
    assert len(gaussian) == 1 and gaussian[0][1].tolist() == [30.0] * 3


def test_validation_clips_are_held_out_and_labels_checked(tmp_path, clip_dir):
    from streamden.train.data import FrameBank

    other = make_image_sequence(tmp_path / "train" / "d", frames=7, size=(40, 40))
    cfg = tiny_config(tmp_path, clip_dir, steps=2, val_every=2, log_every=1, checkpoint_every=0,
                      val_degradations=["compressed s15 x264 crf23"])
    cfg.data.videos = [str(clip_dir), str(other.parent)]
    cfg.data.val_videos = [str(other)]
    bank = FrameBank.load(cfg.data, min_size=32)
    assert len(bank.clips) == 1 and bank.names == [str(clip_dir)]
    lines = []
    out = train(cfg, log=lines.append)
    assert any("val: 1 clips (compressed s15 x264 crf23)" in line for line in lines)
    assert read_metadata(out)["val_noise"] == "compressed s15 x264 crf23"
    with pytest.raises(ConfigError, match="val_degradations.*camera iso9"):
        load_config(TrainConfig, "configs/train/fastdvdnet.yaml", ["val_degradations=[camera iso9]"])


def test_a_check_that_shifts_flat_colours_is_never_the_best(tmp_path, clip_dir):
    # val_colour_limit: the held-out clips have no flat saturated areas, so the flat-colour check
    # decides; an untrained network shifts them by tens of levels, so no check is eligible.
    cfg = tiny_config(tmp_path, clip_dir, steps=4, val_every=2, log_every=1, checkpoint_every=0,
                      val_colour_limit=3.0, val_keep=True)
    lines = []
    train(cfg, log=lines.append)
    run = tmp_path / "run"
    assert not (run / "best.safetensors").exists()
    assert sorted(p.name for p in run.glob("val_*.safetensors")) == ["val_2.safetensors", "val_4.safetensors"]
    assert read_metadata(run / "val_4.safetensors")["steps"] == "4"
    assert sum("not eligible as best" in line for line in lines) == 2
    # without the limit, the same run chooses a best check and keeps no per-check weights
    cfg = tiny_config(tmp_path / "b", clip_dir, steps=4, val_every=2, log_every=1, checkpoint_every=0)
    train(cfg, log=lambda s: None)
    assert (tmp_path / "b" / "run" / "best.safetensors").exists()
    assert not list((tmp_path / "b" / "run").glob("val_*.safetensors"))


def test_a_wider_network_starts_from_its_init_unchanged_and_trains(tmp_path, clip_dir):
    from streamden.models.registry import load_model
    from streamden.train.trainer import initial_model

    narrow = train(tiny_config(tmp_path / "n", clip_dir, steps=3, val_every=0, checkpoint_every=0), log=lambda s: None)
    lines = []
    wide_cfg = tiny_config(tmp_path / "w", clip_dir, steps=3, val_every=0, checkpoint_every=0, init=str(narrow), channels=40)
    wide = initial_model(wide_cfg, lines.append).eval()
    assert wide.base == 40 and "widened from 32 to 40" in lines[0]
    x, m = torch.rand(2, 5, 3, 16, 16), torch.full((2, 1, 16, 16), 0.08)
    with torch.no_grad():
        assert torch.allclose(load_model(narrow)(x, m), wide(x, m), atol=1e-5)
    trained = train(wide_cfg, log=lambda s: None)
    assert load_model(trained).base == 40        # the width is read back from the weights
    with pytest.raises(ConfigError, match="narrower"):
        initial_model(tiny_config(tmp_path / "x", clip_dir, init=str(trained), channels=32))
    with pytest.raises(ConfigError, match="channels"):
        TrainConfig(architecture="litedvd", channels=48)
