"""Issue 9, the parts that need no Ray: without it --ray says how to install it (one clear
error, exit 4), and `streamden batch` without --ray runs the videos here, one report."""
from __future__ import annotations

import sys

import pytest

from streamden.cli import main
from streamden.distributed import RAY_MISSING, import_ray
from streamden.errors import ConfigError
from tests.media import make_video


def test_ray_missing_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without ray looks like
    with pytest.raises(ConfigError, match=r'pip install "streamden\[distributed\]"'):
        import_ray()
    src = tmp_path / "in.mp4"
    src.write_bytes(b"")
    assert main(["denoise", str(src), "-o", str(tmp_path / "out.mp4"), "--ray", "--no-progress"]) == 4
    assert RAY_MISSING in capsys.readouterr().err
    assert not (tmp_path / "out.mp4").exists()


def test_batch_without_ray_runs_here_with_one_report(tmp_path, random_weights, capsys):
    for n in range(2):
        make_video(tmp_path / "in" / f"clip{n}.mp4", frames=8, size=(64, 48), gop=4, seed=n)
    code = main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--ext", ".mkv", "--codec", "ffv1",
                 "--model", str(random_weights), "--sigma", "20", "--set", "job.segment_frames=4",
                 "--report", str(tmp_path / "report.json")])
    assert code == 0
    assert "2 of 2 videos written, 16 frames" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip0.mkv", "clip1.mkv"]
    assert (tmp_path / "report.json").is_file()
