"""The segment plan and manifest behind --resume (reused by the scale-out work)."""
from __future__ import annotations

from streamden.segments import Manifest, plan_segments, work_dir
from tests.media import make_video


def test_segments_start_at_keyframes_when_one_is_near(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=16, gop=5)
    plan = plan_segments(src, 0, segment_frames=4)
    assert plan.keyframes == [0, 5, 10, 15] and plan.seekable and plan.frames == 16
    assert plan.bounds == [(0, 5), (5, 10), (10, 15), (15, 16)]
    assert plan_segments(src, 0, segment_frames=100).bounds == [(0, 16)]


def test_segments_without_near_keyframes_split_at_the_frame_count(tmp_path):
    src = make_video(tmp_path / "in.mkv", frames=12, gop=100)
    assert plan_segments(src, 0, segment_frames=5).bounds == [(0, 5), (5, 10), (10, 12)]


def test_manifest_round_trip_and_checksums(tmp_path):
    folder = work_dir(tmp_path / "out.mkv")
    folder.mkdir()
    (folder / "seg_00000.mkv").write_bytes(b"segment")
    import hashlib
    manifest = Manifest(source={"path": "in.mkv"}, settings={"sigma": 20}, bounds=[[0, 4], [4, 8]])
    manifest.segments["0"] = {"file": "seg_00000.mkv", "first": 0, "stop": 4, "frames": 4,
                              "sha256": hashlib.sha256(b"segment").hexdigest()}
    manifest.save(folder)
    again = Manifest.load(folder)
    assert again == manifest and again.verified(0, folder) and not again.verified(1, folder)
    (folder / "seg_00000.mkv").write_bytes(b"damaged")
    assert not again.verified(0, folder)
    (folder / "manifest.json").write_text("{ not json")
    assert Manifest.load(folder) is None
