"""Every error a user can cause reaches the `streamden` command as one line with its exit code.

Each case is a bad command as a user would type it. The command must print exactly one line
on stderr, ``streamden: error: ...`` naming the problem, return the exit code of the error's
class (streamden/errors.py: 2 input, 3 output, 4 config, 5 model, 6 kernel), show no
traceback, and leave nothing in the output folder. No case runs a network.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamden.cli import main
from streamden.errors import ConfigError, InputError, KernelError, ModelError, OutputError
from tests.media import make_text_file, make_video

CONFIG, INPUT, OUTPUT, MODEL = ConfigError.exit_code, InputError.exit_code, OutputError.exit_code, ModelError.exit_code


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """A tiny video, a text file named .mp4, two burst shots, a fake checkpoint and a plain file."""
    root = tmp_path_factory.mktemp("media")
    make_video(root / "in.mp4", frames=4, size=(32, 32))
    make_text_file(root / "text.mp4")
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(root / f"shot{i}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    (root / "ckpt.pth").write_bytes(b"not a checkpoint")
    (root / "a_file").write_text("a file, not a folder\n")
    return root


def _denoise(*extra: str, src: str = "{media}/in.mp4", out: str = "{out}/out.mp4") -> list[str]:
    return ["denoise", src, "-o", out, "--no-progress", *extra]


def _burst(*extra: str) -> list[str]:
    return ["burst", "{media}/shot0.png", "{media}/shot1.png", "-o", "{out}/night.png", *extra]


CASES = [
    # denoise: config keys, option values, presets and config files (exit 4)
    pytest.param(_denoise("--set", "nosuch.key=1"), CONFIG, "unknown config key 'nosuch'", id="denoise-set-unknown"),
    pytest.param(_denoise("--set", "model.tile=abc"), CONFIG, "'model.tile': expected int", id="denoise-set-type"),
    pytest.param(_denoise("--set", "model"), CONFIG, "'model' is not key=value", id="denoise-set-no-equals"),
    pytest.param(_denoise("--set", "model.tile=-5"), CONFIG, "model.tile must be", id="denoise-set-tile-negative"),
    pytest.param(_denoise("--tile", "-5"), CONFIG, "model.tile must be", id="denoise-tile-negative"),
    pytest.param(_denoise("--set", "model.tile_overlap=-1"), CONFIG, "model.tile_overlap must be",
                 id="denoise-set-overlap-negative"),
    pytest.param(_denoise("--set", "noise.smoothing=5"), CONFIG, "noise.smoothing must lie in [0, 1)",
                 id="denoise-set-smoothing"),
    pytest.param(_denoise("--set", "graph.queue_size=0"), CONFIG, "graph.queue_size must be",
                 id="denoise-set-queue-size"),
    pytest.param(_denoise("--crf", "-5"), CONFIG, "encode.crf must be", id="denoise-crf-negative"),
    pytest.param(_denoise("--set", "job.segment_frames=0"), CONFIG, "job.segment_frames must be",
                 id="denoise-set-segment-frames"),
    pytest.param(_denoise("--set", "model.device=tpu"), CONFIG, "got 'tpu'", id="denoise-set-device"),
    pytest.param(_denoise("--set", "align.occlusion=foo", "--align", "flow"), CONFIG,
                 "align.occlusion must be one of", id="denoise-set-occlusion"),
    pytest.param(_denoise("--precision", "fp16", "--device", "cpu"), CONFIG, "fp16 runs on CUDA only",
                 id="denoise-fp16-on-cpu"),
    pytest.param(_denoise("--sigma", "-3"), CONFIG, "sigma must lie in [0, 255]", id="denoise-sigma-negative"),
    pytest.param(_denoise("--sigma", "loud"), CONFIG, "sigma must be a number", id="denoise-sigma-word"),
    pytest.param(_denoise("--strength", "5"), CONFIG, "noise.strength must lie in [0.25, 4] (1 = as estimated or "
                 "given), got 5.0", id="denoise-strength-high"),
    pytest.param(["live", "udp://127.0.0.1:9", "--out", "{out}/rec/", "--strength", "0.1"], CONFIG,
                 "noise.strength must lie in [0.25, 4]", id="live-strength-low"),
    pytest.param(["burst", "{media}/shot0.png", "{media}/shot1.png", "-o", "{out}/n.png", "--strength", "-1"], CONFIG,
                 "got -1.0", id="burst-strength-negative"),
    pytest.param(["eval", "--clean", "{media}", "--degradation", "blur"], CONFIG,
                 "--degradation: unknown degradation 'blur'", id="eval-degradation-unknown"),
    pytest.param(["eval", "--clean", "{media}", "--degradation", "compressed", "--crf", "60"], CONFIG,
                 "--degradation: CRF 60 is out of range (0-51)", id="eval-crf-range"),
    pytest.param(["eval", "--clean", "{media}", "--degradation", "camera", "--iso", "iso99"], CONFIG,
                 "unknown camera level 'iso99'", id="eval-iso-unknown"),
    pytest.param(_denoise("--set", "model.ensemble=3"), CONFIG, "model.ensemble must be one of 1, 2, 4, 8 "
                 "(network passes per output), got 3", id="denoise-ensemble-3"),
    pytest.param(["eval", "--clean", "{media}", "--ensemble", "16"], CONFIG, "model.ensemble must be one of",
                 id="eval-ensemble-16"),
    pytest.param(_denoise("--fps", "0"), CONFIG, "fps must be positive", id="denoise-fps-zero"),
    pytest.param(_denoise("--preset", "nosuch"), CONFIG, "unknown preset 'nosuch'", id="denoise-preset"),
    pytest.param(_denoise("--config", "/nonexistent.yaml"), CONFIG, "/nonexistent.yaml: config file not found",
                 id="denoise-config-missing"),
    # denoise: input, output, model
    pytest.param(_denoise(src="{media}/missing.mp4"), INPUT, "missing.mp4: no such file", id="denoise-missing"),
    pytest.param(_denoise(src="{media}/text.mp4"), INPUT, "text.mp4: not a media file", id="denoise-not-video"),
    pytest.param(_denoise("--stream", "5"), INPUT, "no video stream #5", id="denoise-stream"),
    pytest.param(_denoise(out="{out}/out.xyz"), OUTPUT, "unknown output extension '.xyz'", id="denoise-out-ext"),
    pytest.param(_denoise(out="{out}/no/such/out.mp4"), OUTPUT, "does not exist", id="denoise-out-dir"),
    pytest.param(_denoise("--model", "nosuch"), MODEL, "unknown model 'nosuch'", id="denoise-model"),
    pytest.param(_denoise("--model", "/nonexistent.safetensors"), MODEL,
                 "/nonexistent.safetensors: weights file not found", id="denoise-weights-missing"),
    # burst
    pytest.param(_burst("--reference", "99"), INPUT, "reference frame 99 is out of range for a burst of 2",
                 id="burst-reference-range"),
    pytest.param(_burst("--reference", "foo"), CONFIG, "reference must be 'sharpest' or a frame index",
                 id="burst-reference-word"),
    pytest.param(["burst", "{media}/missing.png", "{media}/shot0.png", "-o", "{out}/night.png"], INPUT,
                 "missing.png: no such file", id="burst-missing"),
    pytest.param(["burst", "{media}/shot0.png", "{media}/text.mp4", "-o", "{out}/night.png"], INPUT,
                 "text.mp4: not an image", id="burst-not-image"),
    pytest.param(_burst("--set", "nosuch=1"), CONFIG, "unknown config key 'nosuch'", id="burst-set-unknown"),
    pytest.param(_burst("--preset", "nosuch"), CONFIG, "unknown preset 'nosuch'", id="burst-preset"),
    pytest.param(_burst("--sigma", "-3"), CONFIG, "sigma must lie in [0, 255]", id="burst-sigma"),
    pytest.param(_burst("--frames", "1"), CONFIG, "frames must be at least 2", id="burst-frames"),
    # info, eval, bench, train, sample, import, batch, live
    pytest.param(["info", "/nonexistent"], INPUT, "/nonexistent: no such file", id="info-missing"),
    pytest.param(["info", "{media}/text.mp4"], INPUT, "text.mp4: not a media file", id="info-not-video"),
    pytest.param(["eval", "--clean", "/nonexistent"], INPUT, "/nonexistent: no such file", id="eval-clean-missing"),
    pytest.param(["eval", "--clean", "{media}", "--sigma", "foo"], CONFIG, "--sigma 'foo'", id="eval-sigma-word"),
    pytest.param(["eval", "--clean", "{media}", "--sigma", "-5"], CONFIG, "in [0, 255]", id="eval-sigma-range"),
    pytest.param(["eval", "--clean", "{media}", "--frames", "0"], CONFIG, "--frames must be at least 1",
                 id="eval-frames"),
    pytest.param(["bench", "--sizes", "foo"], CONFIG, "size 'foo'", id="bench-sizes"),
    pytest.param(["bench", "--parts", "foo"], CONFIG, "unknown parts ['foo']", id="bench-parts"),
    pytest.param(["bench", "--frames", "0"], CONFIG, "--frames must be at least 1", id="bench-frames"),
    pytest.param(["bench", "--repeat", "0"], CONFIG, "--repeat must be at least 1", id="bench-repeat"),
    pytest.param(["bench", "live", "--sizes", "0x0"], CONFIG, "size '0x0'", id="bench-live-sizes"),
    pytest.param(["bench", "live", "--seconds", "0"], CONFIG, "--seconds must be positive", id="bench-live-seconds"),
    pytest.param(["train", "--config", "/nonexistent.yaml"], CONFIG, "/nonexistent.yaml: config file not found",
                 id="train-config-missing"),
    pytest.param(["train", "--set", "nosuch=1"], CONFIG, "unknown config key 'nosuch'", id="train-set-unknown"),
    pytest.param(["sample", "{out}/s", "--size", "foo"], CONFIG, "--size 'foo' is not WIDTHxHEIGHT",
                 id="sample-size-word"),
    pytest.param(["sample", "{out}/s", "--size", "0x0"], CONFIG, "at least 16x16", id="sample-size-zero"),
    pytest.param(["sample", "{out}/s", "--fps", "0"], CONFIG, "fps must be positive", id="sample-fps"),
    pytest.param(["sample", "{out}/s", "--seconds", "-1"], CONFIG, "seconds must be positive", id="sample-seconds"),
    pytest.param(["sample", "{out}/s", "--sigma", "-5"], CONFIG, "sigma must lie in [0, 255]", id="sample-sigma"),
    pytest.param(["sample", "{media}/a_file/s"], OUTPUT, "cannot create the folder", id="sample-folder"),
    pytest.param(["import", "{media}/nonexistent.pth", "{out}/out.safetensors"], MODEL,
                 "nonexistent.pth: checkpoint file not found", id="import-missing"),
    pytest.param(["import", "{media}/ckpt.pth", "{out}/out.safetensors"], MODEL,
                 "ckpt.pth: not a readable torch checkpoint", id="import-not-checkpoint"),
    pytest.param(["import", "{media}/ckpt.pth", "{media}/ckpt.pth"], OUTPUT, "output is the same file as the input",
                 id="import-onto-itself"),
    pytest.param(["import", "{media}/ckpt.pth", "{out}"], OUTPUT, "is a directory", id="import-to-folder"),
    pytest.param(["import", "{media}/ckpt.pth", "{out}/no/such/out.safetensors"], OUTPUT, "does not exist",
                 id="import-out-dir"),
    pytest.param(["batch", "/nonexistent", "--out", "{out}/batch"], INPUT, "/nonexistent: no such file",
                 id="batch-missing"),
    pytest.param(["batch", "{media}/in.mp4", "--out", "{out}/batch", "--set", "nosuch=1"], CONFIG,
                 "unknown config key 'nosuch'", id="batch-set-unknown"),
    pytest.param(["live", "udp://127.0.0.1:9", "--out", "{out}/rec/", "--set", "live.lookahead=7"], CONFIG,
                 "live.lookahead must be 0, 1 or 2", id="live-lookahead"),
    pytest.param(["live", "udp://127.0.0.1:9", "--out", "{out}/rec/", "--metrics-port", "99999"], CONFIG,
                 "--metrics-port must be a TCP port", id="live-metrics-port"),
    pytest.param(["live", "udp://127.0.0.1:9", "--out", "{out}/rec/", "--duration", "-1"], CONFIG,
                 "--duration must be positive", id="live-duration"),
    pytest.param(["live", "udp://127.0.0.1:9", "--out", "{out}/rec/", "--stats", "0"], CONFIG,
                 "--stats must be positive", id="live-stats"),
    # a key the front door does not read is refused, not ignored
    pytest.param(["live", "udp://127.0.0.1:9", "--out", "{out}/rec/", "--set", "job.segment_frames=9"], CONFIG,
                 "job.segment_frames: streamden live does not use this key", id="live-unread-key"),
    pytest.param(["live", "udp://127.0.0.1:9", "--out", "{out}/rec/", "--set", "encode.codec=h265"], CONFIG,
                 "encode.codec: streamden live writes H.264", id="live-codec"),
    pytest.param(_burst("--set", "align.mode=flow"), CONFIG, "align.mode: streamden burst does not use this key",
                 id="burst-unread-key"),
    pytest.param(_denoise("--set", "live.lookahead=0"), CONFIG, "live.lookahead: streamden denoise does not use",
                 id="denoise-unread-key"),
    # adapt (issue 20), and --adapt
    pytest.param(["adapt", "{media}/missing.mp4", "-o", "{out}/cam.safetensors"], INPUT, "missing.mp4: no such file",
                 id="adapt-missing"),
    pytest.param(["adapt", "{media}/text.mp4", "-o", "{out}/cam.safetensors"], INPUT, "text.mp4: not a media file",
                 id="adapt-not-video"),
    pytest.param(["adapt", "{media}/in.mp4", "-o", "{out}/cam.safetensors"], INPUT,
                 "4 consecutive frames; self-supervised adaptation needs at least 6", id="adapt-too-few-frames"),
    pytest.param(["adapt", "{media}/shot0.png", "-o", "{out}/cam.safetensors"], INPUT,
                 "1 consecutive frame; self-supervised adaptation needs at least 6", id="adapt-one-frame"),
    pytest.param(["adapt", "{media}/in.mp4", "-o", "{out}/cam.safetensors", "--time-budget", "0"], CONFIG,
                 "--time-budget must be positive seconds, got 0", id="adapt-budget-zero"),
    pytest.param(["adapt", "{media}/in.mp4", "-o", "{out}/cam.safetensors", "--steps", "0"], CONFIG,
                 "adapt.steps must be a whole number of at least 1", id="adapt-steps-zero"),
    pytest.param(["adapt", "{media}/in.mp4", "-o", "{out}/cam.pt"], CONFIG, "name the output *.safetensors",
                 id="adapt-output-ext"),
    pytest.param(["adapt", "{media}/in.mp4", "-o", "{out}/cam.safetensors", "--set", "encode.crf=3"], CONFIG,
                 "encode.crf: streamden adapt does not use this key", id="adapt-unread-key"),
    pytest.param(_denoise("--adapt-seconds", "0"), CONFIG, "--adapt-seconds must be positive seconds",
                 id="denoise-adapt-seconds-zero"),
    pytest.param(_denoise("--adapt", "--resume"), CONFIG, "--adapt does not combine with --resume or --ray",
                 id="denoise-adapt-resume"),
]


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("streamden: error: "), err
    return lines[0]


@pytest.mark.parametrize("args, code, message", CASES)
def test_bad_command_ends_with_one_line(media, tmp_path, capsys, args, code, message):
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.format(media=media, out=out) for a in args]
    assert main(argv) == code, capsys.readouterr().err
    captured = capsys.readouterr()
    assert message in _one_error_line(captured.err), captured.err
    assert "Traceback" not in captured.out
    assert not list(out.iterdir()), "output left behind"
    assert not list(media.glob("*.safetensors")) and (media / "ckpt.pth").read_bytes() == b"not a checkpoint"


def test_a_kernel_that_fails_to_compile_is_one_line(tmp_path, capsys, monkeypatch):
    """A CUDA kernel failure (here: a fake cupy whose compiler rejects the source) is one line, exit 6."""
    from streamden import cli
    from streamden.cuda import module

    class CompileException(Exception):
        pass

    class RawModule:
        def __init__(self, code, options):
            pass

        def compile(self):
            raise CompileException('/tmp/tmpab12/4f2e.cu(12): error: identifier "oops" is undefined\n\n'
                                   '1 error detected in the compilation of "/tmp/tmpab12/4f2e.cu".\n')

    class Device:
        def __init__(self, index):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    fake = type("cupy", (), {"RawModule": RawModule, "cuda": type("cuda", (), {"Device": Device})})
    monkeypatch.setattr(module, "cupy", lambda: fake)
    monkeypatch.setattr(cli, "_print_info", lambda path: module.load_module("warp", 7))
    module.load_module.cache_clear()
    try:
        assert main(["info", "anything"]) == KernelError.exit_code == 6
    finally:
        module.load_module.cache_clear()
    line = _one_error_line(capsys.readouterr().err)
    assert line == ('streamden: error: ' f'{module.kernels_dir() / "warp.cu"}: failed to compile: '
                    'line 12: identifier "oops" is undefined')


def test_a_closed_pipe_stops_the_command_quietly():
    # `streamden models | head -1`: the reader leaves early. No traceback; 141 as for SIGPIPE.
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)   # closed before the first write: the write always fails
    try:
        proc = subprocess.run([sys.executable, "-m", "streamden", "models"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and "Traceback" not in proc.stderr, proc.stderr
