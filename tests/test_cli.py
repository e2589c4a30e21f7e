"""The `streamden` command end to end on real media made with PyAV."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import av
import pytest

from streamden.cli import main
from tests.media import make_audio_only, make_image_sequence, make_text_file, make_video

REPO = Path(__file__).resolve().parents[1]


def video_facts(path: Path) -> dict:
    """Frame count, rate, pts (seconds) of the first video stream, and the audio packets."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        facts = {"rate": video.average_rate, "width": video.width, "height": video.height,
                 "pix_fmt": video.codec_context.pix_fmt, "audio": [s.codec_context.name for s in container.streams.audio]}
        times = sorted(float(f.pts * f.time_base) for f in container.decode(video=0))
    facts["frames"] = len(times)
    facts["times"] = times
    if facts["audio"]:
        with av.open(str(path)) as container:
            packets = [p for p in container.demux(audio=0) if p.size]
            facts["audio_packets"] = len(packets)
            facts["audio_bytes"] = sum(p.size for p in packets)
    return facts


def run_cli(*args: str) -> int:
    return main([str(a) for a in args])


def test_round_trip_keeps_frames_rate_pts_and_audio(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=12, size=(64, 48), fps=25, audio="aac")
    out = tmp_path / "out.mp4"
    assert run_cli("denoise", src, "-o", out, "--model", random_weights, "--sigma", "20", "--no-progress") == 0
    a, b = video_facts(src), video_facts(out)
    assert b["frames"] == a["frames"] == 12
    assert b["rate"] == a["rate"] == 25
    assert b["times"] == pytest.approx(a["times"], abs=1e-3)
    assert b["audio"] == ["aac"]
    assert (b["audio_packets"], b["audio_bytes"]) == (a["audio_packets"], a["audio_bytes"])


def test_opus_audio_in_mkv_is_copied(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mkv", frames=8, size=(48, 32), fps=30, audio="opus")
    out = tmp_path / "out.mkv"
    assert run_cli("denoise", src, "-o", out, "--model", random_weights, "--sigma", "15", "--no-progress") == 0
    a, b = video_facts(src), video_facts(out)
    assert b["frames"] == 8 and b["audio"] == ["opus"]
    assert b["audio_bytes"] == a["audio_bytes"]


def test_odd_size_and_ten_bit_input(tmp_path, random_weights):
    src = make_video(tmp_path / "odd10.mkv", frames=6, size=(63, 47), fps=25, codec="ffv1", pix_fmt="yuv444p10le")
    out = tmp_path / "out.mkv"
    assert run_cli("denoise", src, "-o", out, "--model", random_weights, "--sigma", "10", "--codec", "ffv1",
                   "--no-progress") == 0
    facts = video_facts(out)
    assert (facts["width"], facts["height"], facts["frames"]) == (63, 47, 6)
    assert "10" in facts["pix_fmt"] or "16" in facts["pix_fmt"]


def test_ten_bit_h265_or_h264_stays_ten_bit(tmp_path, random_weights):
    codec = "libx265" if "libx265" in av.codecs_available else "libx264"
    src = make_video(tmp_path / "in10.mp4", frames=6, size=(64, 48), codec=codec, pix_fmt="yuv420p10le")
    out = tmp_path / "out10.mp4"
    assert run_cli("denoise", src, "-o", out, "--model", random_weights, "--sigma", "10", "--no-progress") == 0
    assert "10" in video_facts(out)["pix_fmt"]


def test_image_sequence_in_and_out(tmp_path, random_weights):
    folder = make_image_sequence(tmp_path / "frames", frames=5, size=(40, 32))
    out = tmp_path / "seq.mp4"
    assert run_cli("denoise", folder, "-o", out, "--model", random_weights, "--sigma", "10", "--no-progress") == 0
    assert video_facts(out)["frames"] == 5
    pattern = tmp_path / "pngs" / "%04d.png"
    pattern.parent.mkdir()
    assert run_cli("denoise", out, "-o", pattern, "--model", random_weights, "--sigma", "10", "--no-progress") == 0
    assert len(list(pattern.parent.glob("*.png"))) == 5


def test_info_prints_the_streams(tmp_path, capsys):
    src = make_video(tmp_path / "in.mp4", frames=5, size=(64, 48), fps=25, audio="aac")
    assert run_cli("info", src) == 0
    text = capsys.readouterr().out
    for word in ("h264", "64x48", "25", "aac", "8"):
        assert word in text


def test_refuses_untrained_models_with_a_clear_message(tmp_path, capsys):
    from streamden.models.registry import ModelCard, register
    register(ModelCard(name="test-untrained", architecture="fastdvdnet", weights_file="does_not_exist.safetensors",
                       description="test"))
    src = make_video(tmp_path / "in.mp4", frames=4, size=(32, 32))
    out = tmp_path / "out.mp4"
    code = run_cli("denoise", src, "-o", out, "--model", "test-untrained", "--no-progress")
    assert code != 0 and not out.exists()
    assert "no trained weights" in capsys.readouterr().err


# --- bad input: one clear message naming the file, exit code not 0, nothing left behind ---

def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    missing = tmp_path / "missing.mp4"
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = make_text_file(tmp_path / "text.mp4")
    audio = make_audio_only(tmp_path / "audio.m4a")
    return {"missing": (missing, "not found|no such|does not exist"), "empty": (empty, "empty|zero"),
            "text": (text, "not a|invalid|cannot|unrecognised|unrecognized"), "audio": (audio, "no video")}


@pytest.mark.parametrize("case", ["missing", "empty", "text", "audio"])
def test_bad_input_fails_cleanly(tmp_path, capsys, random_weights, case):
    src, words = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out.mp4"
    code = run_cli("denoise", src, "-o", out, "--model", random_weights, "--no-progress")
    err = capsys.readouterr().err
    assert code != 0
    assert src.name in err
    assert any(w in err.lower() for w in words.split("|")), err
    assert err.count("\n") <= 2, err  # one message, no traceback
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "out" in p.name]


def test_unwritable_output_fails_cleanly(tmp_path, capsys, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=4, size=(32, 32))
    out = tmp_path / "no" / "such" / "dir" / "out.mp4"
    assert run_cli("denoise", src, "-o", out, "--model", random_weights, "--no-progress") != 0
    err = capsys.readouterr().err
    assert str(out.parent) in err and err.count("\n") <= 2, err
    assert not out.exists() and not out.parent.exists()


def test_output_equal_to_input_is_refused(tmp_path, capsys, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=4, size=(32, 32))
    before = src.read_bytes()
    assert run_cli("denoise", src, "-o", src, "--model", random_weights, "--no-progress") != 0
    assert src.read_bytes() == before
    assert "in.mp4" in capsys.readouterr().err


def test_existing_output_needs_overwrite(tmp_path, capsys, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=4, size=(32, 32))
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    assert run_cli("denoise", src, "-o", out, "--model", random_weights, "--no-progress") != 0
    assert out.read_bytes() == b"keep me"
    assert "--overwrite" in capsys.readouterr().err
    assert run_cli("denoise", src, "-o", out, "--model", random_weights, "--sigma", "5", "--overwrite",
                   "--no-progress") == 0
    assert video_facts(out)["frames"] == 4


def test_config_errors_name_the_key(tmp_path, capsys, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=4, size=(32, 32))
    out = tmp_path / "out.mp4"
    assert run_cli("denoise", src, "-o", out, "--set", "encode.crff=3", "--no-progress") != 0
    assert "encode.crff" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_run_leaves_a_playable_file(tmp_path, random_weights, signum):
    src = make_video(tmp_path / "in.mp4", frames=16, size=(256, 256), fps=25)
    out = tmp_path / "out.mp4"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "streamden", "denoise", str(src), "-o", str(out), "--model",
                             str(random_weights), "--sigma", "20", "--encoder-preset", "ultrafast"],
                            cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    progressed = threading.Event()
    lines: list[str] = []

    def watch() -> None:  # tqdm redraws with \r: read characters, not lines
        buffer = ""
        while (ch := proc.stderr.read(1)):
            buffer += ch
            if ch in "\r\n":
                lines.append(buffer)
                if "frame" in buffer and any(f" {n}/16" in buffer for n in range(2, 15)):
                    progressed.set()
                buffer = ""
        lines.append(buffer)

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    assert progressed.wait(120), "".join(lines)
    proc.send_signal(signum)
    code = proc.wait(60)
    reader.join(5)
    assert code == 130, "".join(lines)
    facts = video_facts(out)
    assert 1 <= facts["frames"] < 16
    assert not [p for p in tmp_path.iterdir() if p.name not in ("in.mp4", "out.mp4")]


def test_stats_report_the_noise_levels_used(tmp_path, random_weights, capsys):
    src = make_video(tmp_path / "in.mp4", frames=4, size=(64, 48))
    out = tmp_path / "out.mp4"
    assert run_cli("denoise", src, "-o", out, "--model", random_weights, "--strength", "1.5", "--stats",
                   "--no-progress") == 0
    assert "noise level (0-255) min" in capsys.readouterr().out and video_facts(out)["frames"] == 4
