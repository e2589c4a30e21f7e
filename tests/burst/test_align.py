"""Reference choice, global alignment, local confidence and the noise model on synthetic bursts."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from streamden.burst.fuse import aligned_mean, robust_merge
from streamden.burst.global_align import estimate_homography, homography_map, remap
from streamden.burst.local import LocalAligner
from streamden.noise.estimate import NoiseModel, estimate_noise_model
from streamden.burst.reference import sharpest
from streamden.burst.synth import make_night_burst, shake_homography
from tests.burst.bursts import photo_crop, scene

PHOTO = "Set14_HR/img_001_SRF_2_HR.jpg"


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()


def test_sharpest_frame_is_the_unblurred_one():
    img = scene(128).astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(img, (0, 0), 1.5) for _ in range(4)]
    frames[2] = img
    noisy = [np.clip(f + rng.normal(0, 20 / 255, f.shape), 0, 1).astype(np.float32) for f in frames]
    assert sharpest(_tensor(np.stack(noisy))) == 2


def test_homography_is_recovered_from_noisy_frames():
    img = photo_crop(PHOTO, 256).astype(np.float32) / 255.0
    rng = np.random.default_rng(3)
    truth = shake_homography((256, 256), rng, shift=5.0)
    moved = cv2.warpPerspective(img, truth, (256, 256), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REFLECT)
    noisy = [np.clip(x + rng.normal(0, 30 / 255, x.shape), 0, 1).astype(np.float32) for x in (img, moved)]
    frames = _tensor(np.stack(noisy))
    found = estimate_homography(frames[0], frames[1])
    # The moved frame samples the scene at truth @ x, so a reference pixel sits at inv(truth) @ x in it.
    points = np.float32([[32, 32], [224, 32], [32, 224], [224, 224], [128, 128]]).reshape(-1, 1, 2)
    error = np.abs(cv2.perspectiveTransform(points, found) - cv2.perspectiveTransform(points, np.linalg.inv(truth)))
    assert error.max() < 0.5


def test_confidence_rejects_the_moving_object_and_keeps_the_scene():
    burst = make_night_burst(photo_crop(PHOTO), frames=6, sigma=30, reference=0, seed=1)
    frames, truth = _tensor(burst.noisy), torch.from_numpy(burst.truth).permute(2, 0, 1)
    ref = frames[0]
    homs = [estimate_homography(ref, frames[i]) for i in range(1, 6)]
    aligned, conf = LocalAligner()(ref, frames[1:], homs, NoiseModel(burst.gain, burst.read))
    merged, _ = robust_merge(ref, aligned, conf)
    obj = torch.from_numpy(burst.object_mask)

    def mse(x):
        return float((x - truth)[:, obj].square().mean())
    # Where the object went, the merge is no worse than the noisy reference (no ghost),
    # while the plain mean of the aligned frames is far off.
    assert mse(merged) < mse(ref)
    warped = torch.stack([remap(frames[i + 1], homography_map(h, (192, 192)))[0] for i, h in enumerate(homs)])
    assert mse(aligned_mean(ref, warped)) > 2 * mse(ref)
    away = torch.from_numpy(~cv2.dilate(burst.object_mask.astype(np.uint8), np.ones((15, 15))).astype(bool))
    away[:16], away[-16:], away[:, :16], away[:, -16:] = False, False, False, False
    assert float(conf[:, 0][:, away].mean()) > 0.8, conf[:, 0][:, away].mean(1)


def test_poisson_gaussian_noise_is_estimated():
    burst = make_night_burst(photo_crop(PHOTO, 256), frames=2, sigma=30, read=6, seed=2)
    model = estimate_noise_model(torch.from_numpy(burst.noisy[0]).permute(2, 0, 1))
    truth = NoiseModel(burst.gain, burst.read)
    for level in (0.2, 0.5, 0.8):
        assert abs(model.sigma255(level) - truth.sigma255(level)) < 0.2 * truth.sigma255(level)
