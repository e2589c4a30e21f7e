"""Alignment in the front doors: denoise_video, the Denoiser and the CLI."""
import numpy as np
import torch

from streamden.align import DISFlow, WindowAligner
from streamden.api import Denoiser, denoise_video
from streamden.cli import main
from streamden.io import open_source
from streamden.models.refine import WienerRefiner
from streamden.models.registry import load_model
from streamden.models.streaming import denoise_sequence
from streamden.tensors import image_to_tensor, tensor_to_image
from tests.media import make_video, read_frames


def test_denoise_video_with_flow_alignment_matches_the_reference(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mkv", frames=8, size=(48, 32), codec="ffv1")
    (tmp_path / "out").mkdir()
    dst = tmp_path / "out" / "%03d.png"          # lossless RGB out: no chroma subsampling in the way
    denoise_video(src, dst, sigma=20, model=str(random_weights), align="flow", device="cpu",
                  precision="fp32", handle_signals=False)
    source = open_source(str(src))
    source.open()
    frames = torch.stack([image_to_tensor(f.image) for f in source.generate()])   # decoded as the graph does
    source.close()
    expected = denoise_sequence(load_model(str(random_weights)), frames, 20.0,
                                WindowAligner(DISFlow("medium", prefilter=1.0), window="triplet"),
                                WienerRefiner(DISFlow("medium", prefilter=1.0)))
    got = [read_frames(path)[0] for path in sorted(dst.parent.glob("*.png"))]
    assert len(got) == 8
    for out, ref in zip(got, expected):
        assert np.abs(out.astype(int) - tensor_to_image(ref, np.uint8).astype(int)).max() <= 1


def test_denoiser_align_flag_changes_the_output(random_weights):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 24, 24, 3), dtype=np.uint8)
    plain = list(Denoiser(sigma=20, model=str(random_weights), device="cpu")(frames))
    aligned = list(Denoiser(sigma=20, model=str(random_weights), device="cpu", align="flow")(frames))
    assert any(not np.array_equal(a, b) for a, b in zip(plain, aligned))


def test_cli_align_flag(tmp_path, random_weights):
    src = make_video(tmp_path / "in.mp4", frames=6, size=(48, 32))
    dst = tmp_path / "out.mp4"
    code = main(["denoise", str(src), "-o", str(dst), "--sigma", "20", "--model", str(random_weights),
                 "--align", "flow", "--device", "cpu", "--no-progress"])
    assert code == 0 and len(read_frames(dst)) == 6
