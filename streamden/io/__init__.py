"""Sources and sinks on PyAV: media files, image sequences, probing, atomic output.

>>> from streamden.io import open_source, open_sink, probe, format_info
>>> src = open_source("clip.mp4")  # doctest: +SKIP
>>> sink = open_sink("out.mp4", fps=src.fps, width=src.width, height=src.height,
...                  bit_depth=src.bit_depth, color=src.color, remux_from="clip.mp4")  # doctest: +SKIP
"""
from __future__ import annotations

from .atomic import partial_path
from .frame import ColorInfo, Frame
from .probe import MediaInfo, StreamInfo, format_info, probe
from .sequence import is_sequence_spec, list_images, read_image, write_image
from .sink import ImageSequenceSink, VideoFileSink, open_sink, to_rgb_array
from .source import ImageSequenceSource, VideoFileSource, open_source

__all__ = [
    "ColorInfo", "Frame",
    "MediaInfo", "StreamInfo", "probe", "format_info",
    "VideoFileSource", "ImageSequenceSource", "open_source",
    "VideoFileSink", "ImageSequenceSink", "open_sink", "to_rgb_array",
    "is_sequence_spec", "list_images", "read_image", "write_image", "partial_path",
]
