"""Issue 7, case 4: the disk fills up mid-job. Where the test may mount a small tmpfs (root,
Linux) the disk is really full (ENOSPC); everywhere it also runs the job in a subprocess
whose file-size limit (RLIMIT_FSIZE) makes writes fail at the write layer (EFBIG), a
simulation of the same failure. Either way: one clear error naming the output, no partial
file left, the input untouched, and in a resumable job the segments finished before stay
intact (their checksums still match the manifest)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamden.segments import work_dir
from tests.media import make_video

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["tmpfs", "rlimit"])
def small_disk(request, tmp_path):
    """(folder, how): a folder with about 100 KB of room, and how that is achieved."""
    folder = tmp_path / "small"
    folder.mkdir()
    if request.param == "tmpfs":
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the rlimit case simulates it")
        yield folder, "tmpfs"
        subprocess.run(["umount", str(folder)], check=False)
    else:
        yield folder, "rlimit"


def _run(how: str, *args: str) -> subprocess.CompletedProcess:
    code = "import sys; from streamden.cli import main; sys.exit(main(sys.argv[1:]))"
    prefix = []
    if how == "rlimit":  # every file this process writes may hold at most 100 KB
        code = ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000)); " + code)
    return subprocess.run([sys.executable, "-c", code, *prefix, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)


def test_disk_full_is_a_clear_error_and_leaves_nothing(tmp_path, small_disk, random_weights):
    folder, how = small_disk
    src = make_video(tmp_path / "in.mkv", frames=16, size=(64, 48), pattern="noise", codec="ffv1")
    before = src.read_bytes()
    out = folder / "out.mkv"
    done = _run(how, "denoise", src, "-o", out, "--model", random_weights, "--sigma", "20", "--codec", "ffv1",
                "--no-progress")
    assert done.returncode == 3, done.stderr  # OutputError
    reason = "No space left on device" if how == "tmpfs" else "File too large"
    assert str(out) in done.stderr and reason in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert list(folder.iterdir()) == []  # the temporary file is gone too
    assert src.read_bytes() == before


def test_disk_full_keeps_the_finished_segments(tmp_path, small_disk, random_weights):
    folder, how = small_disk
    src = make_video(tmp_path / "in.mkv", frames=16, size=(64, 48), pattern="noise", codec="ffv1", gop=4)
    out = folder / "out.mkv"
    done = _run(how, "denoise", src, "-o", out, "--model", random_weights, "--sigma", "20", "--codec", "ffv1",
                "--set", "job.segment_frames=4", "--resume", "--no-progress")
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and ("No space left" in done.stderr or "too large" in done.stderr)
    assert not out.exists()
    work = work_dir(out)
    manifest = json.loads((work / "manifest.json").read_text())
    assert manifest["segments"], "no segment fitted: make the disk larger"
    for record in manifest["segments"].values():  # every finished segment is intact
        assert hashlib.sha256((work / record["file"]).read_bytes()).hexdigest() == record["sha256"]
    assert not [p for p in work.iterdir() if ".partial" in p.name]  # the failed one was removed
