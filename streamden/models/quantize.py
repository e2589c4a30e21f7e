"""Static int8 quantisation of exported stages (QDQ format), calibrated on windows of real footage.

Calibration windows come from the footage in a folder (video files, frame folders, or a
folder of either; :func:`streamden.train.data.find_clips`): ``windows`` crops of five
consecutive frames, each with seeded Gaussian noise at a sigma spread over the model's
range (the network is non-blind, so its noise-map input must see the whole range). Stage 1
is calibrated on the three triplets of each window, stage 2 on the torch fp32 stage-1
outputs of the same window: the inputs each stage meets when it runs.

The convolutions and their ReLUs are quantised (weights int8 per output channel,
activations uint8 per tensor: the U8S8 pair, 1.7x faster than S8S8 here); with the ReLU
quantised too, a convolution's output stays uint8 into the next one (ONNX Runtime fuses the
pair into one QLinearConv), 1.2x faster than convolutions alone and no worse (-0.007 against
-0.045 dB at sigma 10 on a validation crop). The skip additions, the pixel shuffles and the
final ``centre - prediction`` stay float32, so that the output is not rounded to an 8-bit
grid of its own.
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .fastdvdnet import PAD_MULTIPLE, WINDOW

#: Sigmas (0-255) of the calibration windows, cycled: the shipped models' range.
CALIBRATION_SIGMAS = (5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 55.0)
#: Activation ranges clip the rarest 0.001 %: 0.03-0.05 dB better than plain min/max at sigma 10
#: and 50 on a validation crop (the outliers otherwise stretch the 8-bit grid).
CALIBRATION_PERCENTILE = 99.999
MAX_FRAMES_PER_CLIP = 16      # frames read from each clip (long videos are not read whole)

Feed = dict[str, np.ndarray]


def calibration_inputs(model: nn.Module, folder: str | Path, windows: int = 24, crop: int = 128,
                       seed: int = 0, sigmas: tuple[float, ...] = CALIBRATION_SIGMAS) -> tuple[list[Feed], list[Feed]]:
    """The calibration feeds of stage 1 and stage 2: ``windows`` noisy windows from ``folder``.

    Raises InputError naming the folder when it holds no frames.

    >>> s1, s2 = calibration_inputs(FastDVDnet(), "../shared/data/val/videos", windows=2)  # doctest: +SKIP
    """
    from ..noise.synth import noisy_8bit
    from ..train.data import find_clips, read_clip
    from .streaming import window_indices

    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: calibration folder not found")
    if windows < 1:
        raise InputError(f"{folder}: at least one calibration window is needed, got {windows}")
    try:
        paths = find_clips([folder])
    except InputError as exc:
        raise InputError(f"no frames to calibrate on: {exc}") from None
    # Window i comes from clip i (cycled): only the clips the windows use are read.
    clips = [read_clip(path, max_frames=MAX_FRAMES_PER_CLIP) for path in paths[:windows]]
    clips = [c for c in clips if c.numel()]
    if not clips:
        raise InputError(f"{folder}: no frames to calibrate on (put video files or folders of frames there)")
    gen = torch.Generator().manual_seed(seed)
    net = copy.deepcopy(model).float().to("cpu").eval()
    stage1: list[Feed] = []
    stage2: list[Feed] = []
    for i in range(windows):
        clip = clips[i % len(clips)]
        count, _, height, width = clip.shape
        side_h = min(crop, height) // PAD_MULTIPLE * PAD_MULTIPLE
        side_w = min(crop, width) // PAD_MULTIPLE * PAD_MULTIPLE
        if side_h < PAD_MULTIPLE or side_w < PAD_MULTIPLE:
            raise InputError(f"{folder}: frames of {width}x{height} are too small to calibrate on")
        t = int(torch.randint(count, (1,), generator=gen))
        y = int(torch.randint(height - side_h + 1, (1,), generator=gen))
        x = int(torch.randint(width - side_w + 1, (1,), generator=gen))
        idx = list(window_indices(t, count))
        clean = clip[idx, :, y:y + side_h, x:x + side_w].float() / 255.0          # (5, 3, h, w)
        sigma = sigmas[i % len(sigmas)]
        noisy = noisy_8bit(clean, sigma, gen)
        triplets = torch.stack([noisy[k:k + 3] for k in range(WINDOW - 2)])     # (3, 3, 3, h, w)
        noise_map = torch.full((3, 1, side_h, side_w), sigma / 255.0)
        with torch.no_grad():
            middle = net.stage1(triplets, noise_map)                               # (3, 3, h, w)
        stage1.append({"frames": triplets.numpy(), "noise_map": noise_map.numpy()})
        stage2.append({"frames": middle.unsqueeze(0).numpy(), "noise_map": noise_map[:1].numpy()})
    return stage1, stage2


def quantize_stage(blob: bytes, feeds: list[Feed], label: str = "stage") -> tuple[bytes, dict[str, str]]:
    """An fp32 stage (serialised ONNX) quantised to int8 QDQ on ``feeds``; returns the model and
    metadata describing the quantisation."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> Feed | None:
            return next(self.items, None)

    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory(prefix="streamden-int8-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        src, dst = Path(tmp) / f"{label}.fp32.onnx", Path(tmp) / f"{label}.int8.onnx"
        src.write_bytes(blob)
        root.setLevel(logging.ERROR)   # the quantiser logs its advice and progress to the root logger
        try:
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv", "Relu"], calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibPercentile": CALIBRATION_PERCENTILE})
        finally:
            root.setLevel(level)
        data = dst.read_bytes()
    meta = {"quantisation": "static int8, QDQ; Conv and Relu (weights int8 per channel, activations uint8 per "
                            f"tensor, calibrated to the {CALIBRATION_PERCENTILE} percentile); additions, pixel "
                            "shuffles and the residual in float32",
            "calibration": f"{len(feeds)} windows of {'x'.join(map(str, feeds[0]['frames'].shape[-2:]))} pixels, "
                           f"Gaussian sigma {', '.join(f'{s:g}' for s in CALIBRATION_SIGMAS)} (cycled)"}
    return data, meta
