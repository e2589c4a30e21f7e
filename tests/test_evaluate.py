import json
import math

import pytest
import torch

from streamden.config import make_config
from streamden.engine import Engine
from streamden.evaluate import EvalResult, evaluate, nlm_denoise, single_frame_denoise
from tests.media import make_image_sequence
from tests.nets import random_fastdvdnet


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_image_sequence(tmp_path_factory.mktemp("eval") / "tiny", frames=6, size=(40, 36))


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_evaluate_tiny_folder(clip, random_weights, tmp_path, one_thread):
    notes = []
    result = evaluate([clip], [20, 40], model=str(random_weights), frames=4, crop=32, seed=3, log=notes.append)
    assert isinstance(result, EvalResult)
    expected = ["noisy", "nlm", "single", "model"]
    try:
        import bm3d  # noqa: F401
        expected.insert(2, "cbm3d")
    except ImportError:
        assert any("CBM3D skipped" in n for n in result.notes)
    assert result.methods == expected
    assert len(result.rows) == 1 * 2 * len(expected)
    assert all(r.frames == 4 and r.clip == "tiny" for r in result.rows)
    noisy20 = result.get("tiny", 20.0, "noisy")
    assert 21.0 < noisy20.psnr < 23.5           # sigma 20 (clipped, 8-bit): about 22.1 dB
    assert result.average("noisy", 40.0)[0] < noisy20.psnr
    table = result.format_table()
    for label in ("noisy input", "NLM", "single-frame", "FastDVDnet", "tiny", "mean"):
        assert label in table
    assert len([line for line in table.splitlines() if line.startswith(("20 ", "40 "))]) == 2 * len(expected)
    data = json.loads(result.to_json(tmp_path / "r.json").read_text())
    assert len(data["rows"]) == len(result.rows) and set(data["mean"]) == {"20", "40"}
    csv_lines = result.to_csv(tmp_path / "r.csv").read_text().strip().splitlines()
    assert csv_lines[0] == "clip,sigma,method,psnr,ssim,frames,seconds,degradation,effective,setting" and len(csv_lines) == len(result.rows) + 1
    # same seed, same noise: the noisy baseline repeats exactly
    again = evaluate([clip], [20], model=str(random_weights), frames=4, crop=32, seed=3, baselines=("noisy",),
                     cbm3d=False, log=lambda s: None)
    assert again.methods == ["noisy", "model"]
    assert again.get("tiny", 20.0, "noisy").psnr == noisy20.psnr
    # --no-refine: the network alone, on the same noisy frames
    alone = evaluate([clip], [20], model=str(random_weights), frames=4, crop=32, seed=3, baselines=("noisy",),
                     cbm3d=False, log=lambda s: None, refine=False)
    assert (again.settings["refine"], alone.settings["refine"]) == (True, False)
    assert alone.get("tiny", 20.0, "model").psnr != again.get("tiny", 20.0, "model").psnr


def test_nlm_and_single_frame_shapes(one_thread):
    noisy = torch.rand(3, 3, 20, 22)
    assert nlm_denoise(noisy, 25.0).shape == noisy.shape
    net = random_fastdvdnet()
    engine = Engine(make_config(None, None, ["model.fold_batchnorm=false"], device="cpu", precision="fp32"), model=net)
    out = single_frame_denoise(engine, noisy, 25.0)
    assert out.shape == noisy.shape
    with torch.no_grad():
        x = noisy[1:2, :, :20, :20]
        ref = net(x.unsqueeze(1).expand(1, 5, 3, 20, 20), torch.full((1, 1, 20, 20), 25 / 255)).clamp(0, 1)
    assert torch.allclose(single_frame_denoise(engine, noisy[:, :, :20, :20], 25.0)[1:2], ref, atol=1e-5)


def test_unknown_baseline(clip, random_weights):
    with pytest.raises(ValueError, match="unknown baseline"):
        evaluate([clip], [20], model=str(random_weights), baselines=("vbm4d",))


def test_average_of_missing_method_is_nan():
    assert math.isnan(EvalResult().average("nlm", 30.0)[0])


def test_evaluate_degradations(clip, random_weights, one_thread):
    from streamden.noise.degrade import degradation_grid

    specs = degradation_grid(["camera", "compressed"], sigmas=[15], isos=["iso3200"], crfs=[28])
    result = evaluate([clip], [], model=str(random_weights), frames=4, crop=32, baselines=("noisy", "nlm"),
                      cbm3d=False, log=lambda s: None, degradations=specs)
    assert result.levels == ["camera iso3200", "compressed s15 x264 crf28"]
    assert result.methods == ["noisy", "nlm", "model", "fixed"]
    for level in result.levels:
        noisy = result.get("tiny", level, "noisy")
        assert 3 < noisy.effective < 40 and noisy.degradation == level
        assert "x level" in result.get("tiny", level, "nlm").setting         # best over the grid
        assert result.get("tiny", level, "model").setting.startswith("auto")
    assert "effective level" in result.format_table()


def test_the_default_network_follows_the_sigma_as_in_a_job(clip, one_thread):
    # a known Gaussian sigma runs model.name, realistic noise at --sigma auto the auto model
    from streamden.noise.degrade import degradation_grid

    quiet = {"frames": 2, "crop": 16, "baselines": ("noisy",), "cbm3d": False, "log": lambda s: None}
    known = evaluate([clip], [20], **quiet)
    blind = evaluate([clip], [], degradations=degradation_grid(["camera"], isos=["iso800"]), **quiet)
    assert known.settings["network"] == make_config(None, sigma=20).model.name == "fastdvdnet-aligned"
    assert blind.settings["network"] == make_config(None).noise.auto_model
