"""ONNX export, the onnxruntime backend and int8: parity with torch, metadata, dynamic sizes, errors.

Real parts: the `streamden export` command, real ONNX files, ONNX Runtime on the CPU, the
shipped weights for int8 (a random network has no meaningful int8 ranges).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")   # the `test` extra installs it; a bare checkout skips

from streamden.api import denoise_frames
from streamden.cli import main
from streamden.config import make_config
from streamden.engine import Engine
from streamden.errors import ConfigError, InputError, ModelError, OutputError
from streamden.metrics import psnr
from streamden.models.onnx_export import FP32_TOLERANCE, read_onnx_metadata, stage_paths
from streamden.models.ort_runner import load_onnx_network
from streamden.models.registry import load_model
from streamden.noise.synth import noisy_8bit
from tests.media import make_image_sequence, make_video, synthetic_frames

#: int8 against fp32 on the synthetic test clip at sigma 25 (PSNR of the int8 output with the fp32
#: output as reference; measured 51.7 dB): far below a visible difference.
INT8_MIN_PSNR_DB = 40.0
#: What int8 may cost against the clean frames on that clip (measured under 0.01 dB); the
#: validation clips' figures are in README "ONNX".
INT8_MAX_LOSS_DB = 0.1


@pytest.fixture(scope="module")
def fp32_export(tmp_path_factory, random_weights: Path) -> Path:
    """A random network's weights file exported through the command, as a user does it."""
    out = tmp_path_factory.mktemp("onnx") / "random.onnx"
    assert main(["export", str(random_weights), "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """Two tiny clips (frame folders) to calibrate on."""
    root = tmp_path_factory.mktemp("footage")
    make_image_sequence(root / "a", frames=6, size=(64, 48))
    make_image_sequence(root / "b", frames=5, size=(48, 40), pattern="static")
    return root


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory, footage: Path) -> Path:
    out = tmp_path_factory.mktemp("int8") / "gaussian-int8.onnx"
    assert main(["export", "fastdvdnet-gaussian", "-o", str(out), "--int8", "--calibrate", str(footage),
                 "--windows", "6", "--crop", "32"]) == 0
    return out


def _engine(model: str, backend: str = "onnxruntime", **options) -> Engine:
    return Engine(make_config(None, model=model, device="cpu", align="none", backend=backend, **options))


def test_export_writes_two_checked_stage_files(fp32_export: Path) -> None:
    first, second = stage_paths(fp32_export)
    assert first.is_file() and second.is_file() and not fp32_export.exists()
    assert not list(fp32_export.parent.glob(".*partial*"))


def test_fp32_export_matches_torch_on_a_random_window(fp32_export: Path, random_weights: Path) -> None:
    net = load_model(str(random_weights))
    ort = load_onnx_network(fp32_export)
    gen = torch.Generator().manual_seed(7)
    frames, maps = torch.rand(3, 3, 3, 40, 52, generator=gen), torch.rand(3, 1, 40, 52, generator=gen) * 0.2
    with torch.no_grad():
        middle = net.stage1(frames, maps)
        torch.testing.assert_close(ort.stage1(frames, maps), middle, rtol=0, atol=FP32_TOLERANCE)
        window = middle.unsqueeze(0)
        torch.testing.assert_close(ort.stage2(window, maps[:1]), net.stage2(window, maps[:1]),
                                   rtol=0, atol=FP32_TOLERANCE)


def test_metadata_travels_in_the_file(fp32_export: Path) -> None:
    for stage, path in enumerate(stage_paths(fp32_export), start=1):
        meta = read_onnx_metadata(path)
        assert meta["stage"] == str(stage) and meta["precision"] == "fp32" and meta["opset"] == "17"
        assert meta["model"] == "random" and meta["architecture"] == "fastdvdnet"
        assert meta["pad_multiple"] == "4" and "reflection" in meta["padding"]
        assert "[0, 1]" in meta["input_range"] and "sigma/255" in meta["noise_map"]
        assert meta["training.training_data"] == "none (random init, tests)"
        assert float(meta["parity_max_abs"]) <= FP32_TOLERANCE


@pytest.mark.parametrize("frames, size", [(5, (21, 30)), (2, (9, 13)), (3, (48, 64))])
def test_dynamic_sizes_run_the_engine_as_torch_does(fp32_export: Path, random_weights: Path, frames: int,
                                                    size: tuple[int, int]) -> None:
    clip = torch.rand(frames, 3, *size, generator=torch.Generator().manual_seed(frames))
    ort = _engine(str(fp32_export)).denoise_clip(clip, 25.0)
    ref = _engine(str(random_weights), backend="torch", precision="fp32").denoise_clip(clip, 25.0)
    assert ort.shape == clip.shape
    torch.testing.assert_close(ort, ref, rtol=0, atol=FP32_TOLERANCE)


def test_batched_and_tiled_streams_on_onnxruntime(fp32_export: Path) -> None:
    clip = torch.rand(6, 3, 30, 42, generator=torch.Generator().manual_seed(1))
    plain = _engine(str(fp32_export)).denoise_clip(clip, 20.0)
    engine = Engine(make_config(None, model=str(fp32_export), device="cpu", align="none", backend="onnxruntime",
                                overrides=["model.batch=4", "model.tile=16"]))
    assert engine.tiles_used == 16 and engine.runner.options.batch == 4
    torch.testing.assert_close(engine.denoise_clip(clip, 20.0), plain, rtol=0, atol=FP32_TOLERANCE)


def test_registered_model_runs_on_onnxruntime_through_the_api() -> None:
    clip = np.stack(synthetic_frames(4, (30, 22)))
    ort = denoise_frames(clip, sigma=20, model="fastdvdnet-gaussian", device="cpu", backend="onnxruntime",
                         precision="fp32")
    ref = denoise_frames(clip, sigma=20, model="fastdvdnet-gaussian", device="cpu", precision="fp32")
    assert ort.shape == clip.shape and np.abs(ort.astype(int) - ref.astype(int)).max() <= 1


def test_int8_export_costs_little(int8_export: Path) -> None:
    meta = read_onnx_metadata(stage_paths(int8_export)[1])
    assert meta["precision"] == "int8" and "QDQ" in meta["quantisation"] and "6 windows" in meta["calibration"]
    clean = torch.from_numpy(np.stack(synthetic_frames(6, (52, 40), seed=3))).permute(0, 3, 1, 2).float() / 255
    noisy = noisy_8bit(clean, 25.0, torch.Generator().manual_seed(0))
    fp32 = _engine("fastdvdnet-gaussian", precision="fp32").denoise_clip(noisy, 25.0)
    int8 = _engine(str(int8_export)).denoise_clip(noisy, 25.0)
    assert float(psnr(int8, fp32)) >= INT8_MIN_PSNR_DB
    assert float(psnr(fp32, clean)) - float(psnr(int8, clean)) <= INT8_MAX_LOSS_DB


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


def test_bad_exports_are_one_clear_error(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "m.onnx")
    (tmp_path / "empty").mkdir()
    (tmp_path / "media").mkdir()
    video = make_video(tmp_path / "media" / "in.mp4", frames=3, size=(32, 32))
    cases = [
        (["export", "no-such-model", "-o", out], ModelError, "unknown model 'no-such-model'"),
        (["export", "fastdvdnet-gaussian", "-o", str(tmp_path / "missing" / "m.onnx")], OutputError,
         "does not exist"),
        (["export", "fastdvdnet-gaussian", "-o", out, "--int8", "--calibrate", str(tmp_path / "empty")],
         InputError, "no frames to calibrate on"),
        (["export", "fastdvdnet-gaussian", "-o", out, "--int8"], ConfigError, "--int8 needs --calibrate"),
        (["export", "fastdvdnet-gaussian", "-o", out, "--opset", "7"], ConfigError, "--opset must be"),
        (["export", "fastdvdnet-gaussian", "-o", str(tmp_path / "m.pt")], ConfigError, "NAME.onnx"),
        (["denoise", str(video), "-o", str(tmp_path / "o.mp4"), "--model", out, "--no-progress"], ModelError,
         "onnxruntime backend"),
    ]
    for argv, error, text in cases:
        code, line = _run(capsys, *argv)
        assert code == error.exit_code and line.startswith("streamden: error:") and text in line, (argv, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "media"]   # nothing written, no partial files
    assert list((tmp_path / "media").iterdir()) == [video]


def test_existing_output_is_refused(fp32_export: Path, random_weights: Path, capsys) -> None:
    code, line = _run(capsys, "export", str(random_weights), "-o", str(fp32_export))
    assert code == OutputError.exit_code and "--overwrite" in line


def test_a_missing_stage_file_or_backend_value_is_named(tmp_path: Path, fp32_export: Path) -> None:
    lonely = tmp_path / "lonely.stage1.onnx"
    lonely.write_bytes(stage_paths(fp32_export)[0].read_bytes())
    with pytest.raises(ModelError, match="lonely.stage2.onnx: ONNX file not found"):
        _engine(str(tmp_path / "lonely.onnx"))
    with pytest.raises(ConfigError, match="model.backend must be one of torch, onnxruntime"):
        make_config(None, backend="tensorrt")
    with pytest.raises(ConfigError, match="does not match"):
        _engine(str(fp32_export), precision="fp16")


def test_missing_onnxruntime_names_the_extra(monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # `import onnxruntime` raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "streamden\[onnx\]"'):
        _engine("fastdvdnet-gaussian")
    code, line = _run(capsys, "export", "fastdvdnet-gaussian", "-o", str(tmp_path / "m.onnx"))
    assert code == ConfigError.exit_code and 'streamden[onnx]' in line


def test_bench_onnxruntime_rows_run(fp32_export: Path, random_weights: Path) -> None:
    from streamden.bench import _onnx_precision, _streaming, onnxruntime_configurations, run_bench

    rows = onnxruntime_configurations(str(fp32_export))
    assert [name for name, _, _ in rows] == ["onnxruntime fp32 (exported in memory)", "onnxruntime random.onnx"]
    frames = torch.rand(3, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    for _, options, ort in rows:   # the engines the bench times (the ladder itself: tests/test_bench.py)
        _streaming(load_model(str(random_weights)), frames, torch.device("cpu"), options, ort)()
    assert _onnx_precision(str(fp32_export), rows[1][1]) == "fp32"
    with pytest.raises(ConfigError, match="--backend onnxruntime"):
        run_bench([(64, 48)], frames=3, device="cpu", parts=("network",), model=str(fp32_export))


def test_every_front_door_takes_the_backend() -> None:
    from streamden.cli import build_parser

    parser = build_parser()
    for argv in (["denoise", "in.mp4", "-o", "out.mp4"], ["live", "udp://127.0.0.1:1", "--out", "rec/"],
                 ["bench"]):
        assert parser.parse_args([*argv, "--backend", "onnxruntime"]).backend == "onnxruntime"
    for door, preset in (("live", "surveillance"), ("frames", None), ("burst", "night_burst")):
        assert make_config(preset, door=door, backend="onnxruntime").model.backend == "onnxruntime"


def test_lite_exports_and_streams_one_block_per_frame_on_onnxruntime(tmp_path: Path) -> None:
    out = tmp_path / "lite.onnx"
    assert main(["export", "lite", "-o", str(out)]) == 0
    assert read_onnx_metadata(stage_paths(out)[1])["inputs"].startswith("frames")   # stage 2 keeps both inputs
    clip = torch.rand(5, 3, 22, 30, generator=torch.Generator().manual_seed(2))
    for model in (str(out), "lite"):   # the export file, and the registered model exported in memory
        engine = _engine(model)
        assert engine.single_stage and engine.blocks_per_frame(1) == 1
        ref = _engine("lite", backend="torch", precision="fp32").denoise_clip(clip, 25.0)
        torch.testing.assert_close(engine.denoise_clip(clip, 25.0), ref, rtol=0, atol=FP32_TOLERANCE)


def test_the_self_ensemble_runs_on_onnxruntime_as_on_torch(fp32_export: Path, random_weights: Path) -> None:
    clip = torch.rand(5, 3, 20, 28, generator=torch.Generator().manual_seed(2))
    ort = _engine(str(fp32_export), ensemble=4).denoise_clip(clip, 25.0)
    ref = _engine(str(random_weights), backend="torch", precision="fp32",
                  ensemble=4).denoise_clip(clip, 25.0)
    torch.testing.assert_close(ort, ref, rtol=0, atol=FP32_TOLERANCE)
