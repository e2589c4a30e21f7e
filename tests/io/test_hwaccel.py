"""NVDEC decoding (input.hwaccel): one clear error without a GPU, the same frames with one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from streamden.cli import main
from streamden.config import make_config
from streamden.errors import ConfigError, StreamdenError
from streamden.io import open_source
from streamden.io.source import VideoFileSource
from streamden.metrics import psnr
from tests.media import has_codec, make_video

CUDA = torch.cuda.is_available()
needs_no_gpu = pytest.mark.skipif(CUDA, reason="checks the error on a machine without a CUDA device")
needs_gpu = pytest.mark.skipif(not CUDA, reason="needs a CUDA device for NVDEC")


def decode(path, **options) -> tuple[VideoFileSource, list]:
    source = VideoFileSource(path, **options)
    try:
        return source, list(source.generate())
    finally:
        source.close()


def assert_same_frames(ref: list, got: list, exact: bool) -> None:
    """Same count, pts, time_base, colour and pixel format; pixels equal (software) or close (NVDEC)."""
    assert len(got) == len(ref) > 0
    for a, b in zip(ref, got):
        assert (b.pts, b.time_base, b.index, b.bit_depth, b.color) == (a.pts, a.time_base, a.index,
                                                                         a.bit_depth, a.color)
        assert (b.image.shape, b.image.dtype) == (a.image.shape, a.image.dtype)
        if exact:
            np.testing.assert_array_equal(b.image, a.image)
    if not exact:
        scale = float(np.iinfo(ref[0].image.dtype).max)
        stack = lambda frames: torch.from_numpy(np.stack([f.image for f in frames]).astype(np.float32) / scale)
        assert float(psnr(stack(got), stack(ref))) > 40.0


def test_bad_hwaccel_value_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="input.hwaccel"):
        make_config(preset=None, hwaccel="gpu")
    with pytest.raises(ConfigError, match="input.hwaccel"):
        make_config(preset=None, overrides=["input.hwaccel=nvdec"])
    assert make_config(preset=None, hwaccel="auto").input.hwaccel == "auto"
    clip = make_video(tmp_path / "in.mp4", frames=2, size=(32, 32))
    with pytest.raises(ConfigError, match="input.hwaccel"):
        VideoFileSource(clip, hwaccel="gpu")


@needs_no_gpu
def test_cuda_without_a_device_is_one_clear_error(tmp_path):
    clip = make_video(tmp_path / "in.mp4", frames=4, size=(64, 48))
    with pytest.raises(StreamdenError, match="NVDEC") as info:
        VideoFileSource(clip, hwaccel="cuda")
    assert str(clip) in str(info.value) and "CUDA" in str(info.value)


@needs_no_gpu
def test_cli_cuda_without_a_device_fails_cleanly(tmp_path, capsys, random_weights):
    clip = make_video(tmp_path / "in.mp4", frames=4, size=(64, 48), audio="aac")
    out = tmp_path / "out.mp4"
    code = main(["denoise", str(clip), "-o", str(out), "--hwaccel", "cuda", "--model", str(random_weights),
                 "--sigma", "20", "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert "in.mp4" in err and "NVDEC" in err
    assert err.count("\n") <= 2, err  # one message, no traceback
    assert not [p for p in tmp_path.iterdir() if "out" in p.name]


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_auto_decodes_like_software(tmp_path, caplog, pix_fmt):
    clip = make_video(tmp_path / "in.mp4", frames=8, size=(64, 48), pix_fmt=pix_fmt,
                      color={"range": "tv", "matrix": 1, "primaries": 1, "transfer": 1})
    software, ref = decode(clip)
    assert (software.hwaccel_active, software.decoder_name) == (False, "h264 (software)")
    with caplog.at_level("INFO", logger="streamden.io.source"):
        auto, got = decode(clip, hwaccel="auto")
    lines = [r.getMessage() for r in caplog.records if "NVDEC" in r.getMessage()]
    assert len(lines) == 1 and str(clip) in lines[0]  # one line says which decoder runs
    assert auto.decoder_name == ("h264 (cuda)" if auto.hwaccel_active else "h264 (software)")
    assert_same_frames(ref, got, exact=not auto.hwaccel_active)


def test_isolated_source_decides_once_and_reports_the_decoder(tmp_path):
    clip = make_video(tmp_path / "in.mp4", frames=6, size=(64, 48))
    _, ref = decode(clip)
    source = open_source(clip, isolate=True, hwaccel="auto")
    got = list(source.generate())
    assert source.decoder_name.startswith("h264 (")
    assert source.options["hwaccel"] == ("cuda" if source.hwaccel_active else "none")
    assert_same_frames(ref, got, exact=not source.hwaccel_active)


@needs_gpu
@pytest.mark.parametrize("codec,pix_fmt", [("libx264", "yuv420p"), ("libx265", "yuv420p10le")])
def test_nvdec_matches_software_decoding(tmp_path, codec, pix_fmt):
    if not has_codec(codec):
        pytest.skip(f"this PyAV has no {codec}")
    clip = make_video(tmp_path / "in.mp4", frames=12, size=(256, 192), codec=codec, pix_fmt=pix_fmt)
    _, ref = decode(clip)
    nvdec, got = decode(clip, hwaccel="cuda")
    assert nvdec.hwaccel_active and nvdec.decoder_name.endswith("(cuda)")
    assert_same_frames(ref, got, exact=False)
