"""Optical-flow alignment of neighbouring frames to a reference frame.

Flow convention (OpenCV's): ``flow`` is ``(N, 2, H, W)`` float32 in pixels, channel 0 the
horizontal and channel 1 the vertical displacement, **from the reference to the moving
frame**: pixel ``(x, y)`` of the reference matches ``(x + flow[0], y + flow[1])`` of the
moving frame, so ``warp(moving, flow)`` resamples the moving frame onto the reference grid.

Every operation has a pure torch reference (``*_torch``) that runs anywhere, and a CUDA
kernel from ``kernels/`` with the same signature (``streamden.cuda.ops``); the public
function dispatches on the tensor's device, so a CPU tensor runs the reference and a CUDA
tensor runs the kernel (a kernel that fails to compile or load raises; no silent fallback).
"""
from .color import (interleaved_to_planar, interleaved_to_planar_torch, planar_to_interleaved,
                    planar_to_interleaved_torch, rgb_to_luma, rgb_to_luma_torch)
from .flow import FLOW_METHODS, FlowEstimator, make_flow_estimator
from .occlusion import consistency_mask, consistency_mask_torch
from .warp import warp, warp_torch
from .flow import DISFlow
from .window import WindowAligner, align_windows, make_aligner
from .lk import LKFlow, LKParams, lk_flow, lk_flow_torch

__all__ = [
    "DISFlow", "FLOW_METHODS", "FlowEstimator", "WindowAligner", "consistency_mask", "consistency_mask_torch",
    "align_windows", "make_aligner", "make_flow_estimator", "rgb_to_luma", "rgb_to_luma_torch", "warp", "warp_torch",
    "LKFlow", "LKParams", "lk_flow", "lk_flow_torch", "interleaved_to_planar", "interleaved_to_planar_torch",
    "planar_to_interleaved", "planar_to_interleaved_torch",
]
