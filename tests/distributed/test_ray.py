"""Issue 9: Ray runs on a local Ray are exact (decoded frames equal a single-process run,
FFV1 so equality is exact), survive a killed task, resume from the manifest, and run a batch
with one report."""
from __future__ import annotations

import functools
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[test]' (or '.[distributed]')")

from streamden.api import denoise_video  # noqa: E402
from streamden.cli import main  # noqa: E402
from streamden.config import make_config  # noqa: E402
from streamden.distributed import denoise_batch, denoise_on_ray, verify  # noqa: E402
from streamden.errors import Cancelled  # noqa: E402
from streamden.segments import work_dir  # noqa: E402
from tests.media import make_dark_camera_clip, make_text_file, make_video, packet_stats, read_frames  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FRAMES, SIZE = 24, (64, 48)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module; workers import tests.* through PYTHONPATH. Ray's driver
    leaves a SIGTERM handler and environment variables behind: both are put back after."""
    environ, sigterm = dict(os.environ), signal.getsignal(signal.SIGTERM)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()
    signal.signal(signal.SIGTERM, sigterm)
    os.environ.clear()
    os.environ.update(environ)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray")
    return make_video(folder / "in.mp4", frames=FRAMES, size=SIZE, gop=4, audio="aac")


def _config(weights, sigma="20", segment_frames=8):
    return make_config(None, codec="ffv1", segment_frames=segment_frames, model=str(weights), sigma=sigma)


@functools.lru_cache(maxsize=None)
def _single_process(src: Path, weights: Path, sigma: str) -> tuple[list[np.ndarray], list]:
    """Decoded frames and audio packets of an ordinary single-process run (computed once)."""
    out = src.with_name(f"whole_{sigma}.mkv")
    denoise_video(src, out, preset=None, codec="ffv1", model=str(weights), sigma=sigma, handle_signals=False)
    return read_frames(out), _audio(out)


def _audio(path: Path) -> list[tuple[float | None, int]]:
    # (pts, size): the join gives the pre-roll packet its duration where a single-process run
    # writes 0 (a detail of streamden.segments.join_segments, the same with --resume)
    return [(pts, size) for pts, _, size in packet_stats(path)["audio"]]


def _interrupt(job, number: int) -> None:
    """``on_segment``: Ctrl-C after the first segment finished."""
    raise KeyboardInterrupt


def _assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want) == FRAMES
    differ = [i for i, (a, b) in enumerate(zip(got, want)) if not np.array_equal(a, b)]
    assert not differ, f"frames {differ} differ from the single-process run"


@pytest.mark.parametrize("sigma", ["20", "auto"])
def test_ray_output_equals_single_process(local_ray, clip, random_weights, tmp_path, sigma):
    out = tmp_path / "out.mkv"
    result = denoise_on_ray(clip, out, config=_config(random_weights, sigma))
    assert (result.segments, result.segments_done, result.segments_skipped) == (3, 3, 0)
    assert result.frames == FRAMES
    _assert_same(read_frames(out), _single_process(clip, random_weights, sigma)[0])
    assert _audio(out) == _single_process(clip, random_weights, sigma)[1]  # remuxed once, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]  # work folder removed
    assert verify(out, clip).ok


def _crash_once(marker: str, number: int, frames: int) -> None:
    """Runs inside the task after each frame written: the first attempt of segment 1 kills its
    worker process midway, after 3 frames went into the segment's file."""
    if number == 1 and frames == 3 and os.path.exists(marker):
        os.rename(marker, marker + ".done")
        os._exit(1)


def test_killed_task_is_retried_and_output_is_exact(local_ray, clip, random_weights, tmp_path):
    marker = tmp_path / "crash-once"
    marker.touch()
    out = tmp_path / "out.mkv"
    result = denoise_on_ray(clip, out, config=_config(random_weights), max_retries=2,
                            in_task=functools.partial(_crash_once, str(marker)))
    assert Path(f"{marker}.done").exists(), "the task never crashed"
    assert result.segments_done == 3
    _assert_same(read_frames(out), _single_process(clip, random_weights, "20")[0])


def test_restarted_job_resumes_from_the_manifest(local_ray, clip, random_weights, tmp_path):
    out = tmp_path / "out.mkv"
    config = _config(random_weights, "auto")
    with pytest.raises(Cancelled, match="rerun"):
        denoise_on_ray(clip, out, config=config, workers=1, on_segment=_interrupt)
    folder = work_dir(out)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert list(manifest["segments"]) == ["0"] and not out.exists()
    assert not verify(out).ok  # unfinished: segments 1 and 2 are not done
    result = denoise_on_ray(clip, out, config=config)
    assert (result.segments_skipped, result.segments_done) == (1, 2)
    assert not folder.exists()
    _assert_same(read_frames(out), _single_process(clip, random_weights, "auto")[0])


def test_a_restarted_job_keeps_a_clipped_channels_own_level(local_ray, random_weights, tmp_path):
    # dark footage: the first pass's estimates carry red's own level (sigmas.json, the manifest)
    dark = make_dark_camera_clip(tmp_path / "dark.mkv", frames=FRAMES)
    out = tmp_path / "out.mkv"
    config = _config(random_weights, "auto")
    with pytest.raises(Cancelled, match="rerun"):
        denoise_on_ray(dark, out, config=config, workers=1, on_segment=_interrupt)
    estimates = json.loads((work_dir(out) / "sigmas.json").read_text())
    assert all(isinstance(v, list) and len(v) == 4 for v in estimates[0])
    denoise_on_ray(dark, out, config=config)
    whole = tmp_path / "whole.mkv"
    denoise_video(dark, whole, preset=None, codec="ffv1", model=str(random_weights), sigma="auto", handle_signals=False)
    _assert_same(read_frames(out), read_frames(whole))


def test_verify_finds_a_damaged_segment(local_ray, clip, random_weights, tmp_path):
    out = tmp_path / "out.mkv"
    with pytest.raises(Cancelled):
        denoise_on_ray(clip, out, config=_config(random_weights), workers=1, on_segment=_interrupt)
    segment = work_dir(out) / "seg_00000.mkv"
    segment.write_bytes(segment.read_bytes()[:-10])
    report = verify(out)
    assert any("checksum" in p for p in report.problems)
    result = denoise_on_ray(clip, out, config=_config(random_weights))  # the damaged one is redone
    assert (result.segments_skipped, result.segments_done) == (0, 3)


def test_batch_of_several_files_gives_one_report(local_ray, random_weights, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for n in range(3):
        make_video(inputs / f"clip{n}.mp4", frames=12, size=SIZE, gop=4, seed=n)
    make_text_file(inputs / "broken.mp4")
    report = denoise_batch([inputs / "clip0.mp4", str(inputs / "clip[12].mp4"), inputs / "broken.mp4"],
                           tmp_path / "out", config=_config(random_weights), suffix=".mkv")
    assert [Path(j.src).name for j in report.jobs] == ["clip0.mp4", "clip1.mp4", "clip2.mp4", "broken.mp4"]
    assert [j.ok for j in report.jobs] == [True, True, True, False]
    assert "broken.mp4" in report.jobs[-1].error
    assert all(j.frames == 12 and j.segments == 2 for j in report.jobs[:3])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip0.mkv", "clip1.mkv", "clip2.mkv"]
    assert "3 of 4 videos written, 36 frames" in report.format_table()
    again = denoise_batch([inputs], tmp_path / "out", config=_config(random_weights), suffix=".mkv")
    assert [(j.skipped, j.ok) for j in again.jobs] == [(False, False)] + [(True, True)] * 3  # broken.mp4 first


def test_cli_denoise_and_batch_with_ray(local_ray, clip, random_weights, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths: tasks must not depend on the driver's folder
    shutil.copy(clip, "in.mp4")
    shutil.copy(random_weights, "w.safetensors")
    common = ["--model", "w.safetensors", "--sigma", "20", "--codec", "ffv1", "--set", "job.segment_frames=8"]
    assert main(["denoise", "in.mp4", "-o", "out.mkv", "--ray", "--no-progress", *common]) == 0
    _assert_same(read_frames("out.mkv"), _single_process(clip, random_weights, "20")[0])
    assert main(["verify", "out.mkv", "--source", "in.mp4"]) == 0
    assert main(["batch", "in.mp4", "--out", "batch", "--ray", "--ext", ".mkv", *common]) == 0
    assert "1 of 1 videos written" in capsys.readouterr().out
    assert Path("batch/in.mkv").is_file()


def _image_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("sigma", ["20", "auto"])
def test_image_sequence_output_equals_a_plain_run_file_for_file(local_ray, clip, random_weights, tmp_path, sigma):
    plain, out = tmp_path / "plain", tmp_path / "ray"
    plain.mkdir()
    out.mkdir()
    denoise_video(clip, plain / "%05d.png", preset=None, model=str(random_weights), sigma=sigma,
                  handle_signals=False)
    result = denoise_on_ray(clip, out / "%05d.png", config=_config(random_weights, sigma))
    assert (result.segments, result.frames) == (3, FRAMES)
    assert _image_files(out) == _image_files(plain) and len(_image_files(out)) == FRAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "ray"]   # work folder removed


def test_ray_continues_a_resume_job_and_the_result_is_exact(local_ray, clip, random_weights, tmp_path):
    """--resume and Ray write the same manifest: Ray takes over an interrupted --resume job."""
    from streamden.segments import denoise_segmented

    config = _config(random_weights, "auto")
    out = tmp_path / "out.mkv"

    def stop(number: int) -> None:
        raise Cancelled("test interruption")
    with pytest.raises(Cancelled):
        denoise_segmented(clip, out, config=config, handle_signals=False, after_segment=stop)
    result = denoise_on_ray(clip, out, config=config)
    assert (result.segments_skipped, result.segments_done) == (1, 2)
    _assert_same(read_frames(out), _single_process(clip, random_weights, "auto")[0])


def test_cli_ray_writes_an_image_sequence(local_ray, clip, random_weights, tmp_path):
    out = tmp_path / "frames"
    out.mkdir()
    code = main(["denoise", str(clip), "-o", str(out / "%05d.png"), "--ray", "--no-progress", "--model", str(random_weights),
                 "--sigma", "20", "--set", "job.segment_frames=8"])
    assert code == 0 and len(list(out.iterdir())) == FRAMES


def test_resume_continues_a_ray_job_and_the_result_is_exact(local_ray, clip, random_weights, tmp_path):
    """The reverse: Ray stops after its first segment (Ctrl-C on the driver), --resume finishes."""
    from streamden.segments import denoise_segmented

    config = _config(random_weights, "auto")
    out = tmp_path / "out.mkv"
    with pytest.raises(Cancelled):
        denoise_on_ray(clip, out, config=config, workers=1, on_segment=_interrupt)
    report = denoise_segmented(clip, out, config=config, handle_signals=False)
    assert report.segments_skipped >= 1 and report.segments_skipped + report.segments_done == 3
    _assert_same(read_frames(out), _single_process(clip, random_weights, "auto")[0])
