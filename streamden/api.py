"""Python front door: denoise_video(), denoise_frames() and the frame-at-a-time Denoiser."""
from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np
import torch

from .config import make_config
from .errors import ConfigError
from .engine import Engine
from .graph import Graph, GraphReport
from .io import open_sink, open_source
from .io.frame import Frame
from .pipeline import DenoiseNode, DownloadNode, UploadNode, decode_options, parse_fps, parse_sigma
from .preview.file import FileWatch
from .tensors import image_to_tensor, tensor_to_image
from .burst.run import denoise_burst  # noqa: E402,F401  (night-mode bursts: streamden/burst)

if TYPE_CHECKING:
    from .preview import Preview

def denoise_video(src: str | Path, dst: str | Path, *, preset: str | None = "restoration",
                  config_file: str | Path | None = None, overrides: Iterable[str] = (),
                  stream: int | None = None, overwrite: bool = False, handle_signals: bool = True,
                  on_frame: Callable[[Frame], None] | None = None,
                  on_start: Callable[[Any], None] | None = None, resume: bool = False,
                  preview: "Preview | None" = None, on_adapt: Callable[[Any], None] | None = None,
                  **options: Any) -> GraphReport:
    """Denoise a video file (or image sequence) into ``dst``; audio and subtitles are copied.

    Options are shortcuts for config keys: ``sigma`` (0-255 or "auto"), ``strength`` (0.25-4,
    scales the noise map), ``model``,
    ``align`` ("auto", "none" or "flow"), ``device``, ``codec``, ``crf``, ``encoder_preset``, ``fps``, ``precision``, ``queue_size``, ``hwaccel`` ("none", "cuda" or "auto": NVDEC decoding),
    ``backend`` ("torch" or "onnxruntime"; ``model`` may then be an export ``NAME.onnx``).
    Everything is checked before any work starts, so bad input leaves no output behind.
    ``on_start(source)`` is called once the source is open (its ``frame_count`` sizes a
    progress bar); ``on_frame(frame)`` after each frame is written.
    Raises InputError, OutputError, ConfigError, ModelError, or Cancelled (on Ctrl-C, after
    finalising a playable file with the frames done so far).
    Damaged input is tolerated up to ``input.max_corrupt_fraction`` and reported as
    ``report.input_problems``; a file is decoded in a child process unless
    ``input.isolate`` is false (see :mod:`streamden.io.isolated`). ``resume=True`` runs a
    resumable job in segments and continues an interrupted one (:mod:`streamden.segments`).
    ``preview`` (a :class:`~streamden.preview.Preview`) shows the input and output frames and
    the progress (:class:`~streamden.preview.file.FileWatch`): it starts once the input is
    open (before ``on_start``) and stops when the job ends.
    ``adapt=True`` first fine-tunes the model on a sample of the input itself, without clean
    data, within ``adapt_seconds`` (default: under half the denoising time), then denoises
    all of it (:mod:`streamden.train.adapt`); ``on_adapt(progress)`` follows it step by step
    and ``report.adaptation`` tells how it went.

    >>> denoise_video("in.mp4", "out.mp4", sigma=20, crf=18)  # doctest: +SKIP
    """
    config = make_config(preset, config_file, overrides, **options)
    watch = FileWatch(preview, Path(str(src)).name) if preview is not None else None
    if watch is not None:
        on_frame, on_start = _both(watch.on_frame, on_frame), _both(watch.on_start, on_start)
    try:
        return _denoise_video(src, dst, config, stream=stream, overwrite=overwrite, handle_signals=handle_signals,
                              on_frame=on_frame, on_start=on_start, resume=resume, watch=watch, on_adapt=on_adapt)
    finally:
        if preview is not None:
            preview.stop()


def _denoise_video(src: str | Path, dst: str | Path, config: Any, *, stream: int | None, overwrite: bool,
                   handle_signals: bool, on_frame: Callable[[Frame], None] | None,
                   on_start: Callable[[Any], None] | None, resume: bool, watch: FileWatch | None,
                   on_adapt: Callable[[Any], None] | None) -> GraphReport:
    if resume:
        from .segments import denoise_segmented

        return denoise_segmented(src, dst, config=config, stream=stream, overwrite=overwrite,
                                 handle_signals=handle_signals, on_frame=on_frame, on_start=on_start,
                                 tap=watch.tap if watch is not None else None)
    sigma = parse_sigma(config.noise.sigma)
    source = open_source(str(src), stream=stream, **decode_options(config))
    fps = parse_fps(config.encode.fps) or source.fps
    sink = open_sink(str(dst), fps=fps, width=source.width, height=source.height,
                     bit_depth=source.bit_depth, color=source.color, codec=config.encode.codec,
                     crf=config.encode.crf, preset=config.encode.preset,
                     remux_from=str(src) if Path(src).is_file() else None, overwrite=overwrite)
    engine = Engine(config)
    if config.adapt.enabled:
        from .train.adapt import adapt_engine, read_footage

        count = source.frame_count or source.estimated_frame_count
        clips = read_footage(src, config.adapt.frames, dict(decode_options(config), stream=stream, isolate=False))
        adapt_engine(engine, clips, count or sum(c.frames.shape[0] for c in clips), progress=on_adapt)
    taps = [watch.tap()] if watch is not None else []
    upload = UploadNode(engine.device, sigma, config.noise.smoothing)
    nodes = [source, *taps, upload, DenoiseNode(engine), DownloadNode(), sink]
    graph = Graph(nodes, queue_size=config.graph.queue_size)
    if on_start:
        on_start(source)
    try:
        report = graph.run(handle_signals=handle_signals, on_item=on_frame)
    except BaseException as exc:
        if getattr(exc, "report", None) is not None:
            exc.report.input_problems = getattr(source, "problems", None)
        raise
    report.input_problems = getattr(source, "problems", None)  # DecodeProblems, for --stats
    report.adaptation = engine.adapted                          # AdaptResult or None
    report.noise = upload.tracker.summary() if sigma is None else None   # the levels used, for --stats
    return report


def _both(first: Callable[[Any], None], then: Callable[[Any], None] | None) -> Callable[[Any], None]:
    """One callback calling ``first`` then ``then`` (if any)."""
    if then is None:
        return first

    def call(item: Any) -> None:
        first(item)
        then(item)
    return call


class Denoiser:
    """Frames in, denoised frames out, one at a time, with the model's look-ahead (2 frames).

    Accepts ``(H, W, 3)`` uint8/uint16 numpy RGB or ``(3, H, W)`` float tensors in [0, 1];
    returns the same kind. ``push`` returns the frames that became ready (none for the
    first two), ``flush`` the rest at the end of the sequence; ``reset`` starts a new one.
    ``align`` is ``auto`` (what the model was trained with), ``none`` or ``flow``. The
    network is the :class:`~streamden.engine.Engine` of the config that ``preset``,
    ``config_file``, ``overrides`` and the keyword shortcuts make, as for :func:`denoise_video`
    (no preset by default: the config defaults); ``model`` may also be a network module.

    ``adapt=True`` (config ``adapt.enabled``) needs the footage before the first frame:
    call :meth:`adapt` with (a sample of) the frames first, as :func:`denoise_frames` does.

    >>> den = Denoiser(sigma=20, model=None, device="cpu", allow_untrained=True)
    >>> frames = np.zeros((4, 16, 16, 3), np.uint8)
    >>> out = [o for f in frames for o in den.push(f)] + den.flush()
    >>> len(out), out[0].shape
    (4, (16, 16, 3))
    """

    def __init__(self, sigma: float | str | None = "auto", model: str | torch.nn.Module | None = None,
                 device: str | torch.device = "auto", precision: str = "auto", smoothing: float | None = None,
                 allow_untrained: bool = False, align: str = "auto", *, preset: str | None = None,
                 config_file: str | Path | None = None, overrides: Iterable[str] = (), **options: Any):
        module = model if isinstance(model, torch.nn.Module) else None
        config = make_config(preset, config_file, overrides, door="frames", sigma=sigma, device=str(device), precision=precision,
                             smoothing=smoothing, align=align, model=None if module is not None else model,
                             **options)
        self.config = config
        self.engine = Engine(config, model=module, allow_untrained=allow_untrained)
        self.device = self.engine.device
        self.sigma = parse_sigma(config.noise.sigma)
        self.tracker = self.engine.sigma_tracker()
        self.stream = self.engine.stream()
        self._kinds: deque[np.dtype | None] = deque()  # per pending frame: numpy dtype, or None for tensors

    def adapt(self, frames: np.ndarray | torch.Tensor, progress: Callable[[Any], None] | None = None) -> Any:
        """Fine-tune the network on noisy frames (``(T, H, W, 3)`` uint8/uint16 or ``(T, 3, H, W)``
        float), no clean data, within ``adapt.seconds`` (default: under half the time denoising
        them takes); returns the :class:`~streamden.train.adapt.AdaptResult`.

        >>> den = Denoiser(sigma=20, device="cpu", overrides=["adapt.steps=1", "adapt.patch=16", "adapt.seconds=60"])
        >>> den.adapt(np.zeros((6, 32, 32, 3), np.uint8)).steps
        1
        """
        from .train.adapt import adapt_engine, clip_from_array

        clip = clip_from_array(frames)
        result = adapt_engine(self.engine, [clip], clip.frames.shape[0], progress=progress)
        self.reset()
        self.stream = self.engine.stream()   # over the adapted network
        return result

    def push(self, frame: np.ndarray | torch.Tensor) -> list[np.ndarray | torch.Tensor]:
        """Add one frame; return the denoised frames that are ready now."""
        if self.config.adapt.enabled and self.engine.adapted is None:
            raise ConfigError("adapt=True: the Denoiser adapts on the footage before the first frame; call "
                              "Denoiser.adapt(frames) first (denoise_frames does)")
        if isinstance(frame, np.ndarray):
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype not in (np.uint8, np.uint16):
                raise ValueError(f"expected an (H, W, 3) uint8 or uint16 RGB array, got {frame.shape} {frame.dtype}")
            self._kinds.append(frame.dtype)
            tensor = image_to_tensor(frame, self.device)
        else:
            if frame.ndim != 3 or frame.shape[0] != 3:
                raise ValueError(f"expected a (3, H, W) float tensor in [0, 1], got {tuple(frame.shape)}")
            self._kinds.append(None)
            tensor = frame.to(self.device, torch.float32)
        sigma = self.sigma if self.sigma is not None else self.tracker.update(self.engine.estimate_sigma(tensor))
        return self._convert(self.stream.push(tensor, sigma))

    def flush(self) -> list[np.ndarray | torch.Tensor]:
        """End of the sequence: return the frames still held back."""
        return self._convert(self.stream.finish())

    def reset(self) -> None:
        """Drop everything held and start a new sequence (use at scene cuts)."""
        self.stream.reset()
        self.tracker.reset()
        self._kinds.clear()

    def __call__(self, frames: Iterable[np.ndarray | torch.Tensor]) -> Iterator[np.ndarray | torch.Tensor]:
        """Denoise an iterable of frames lazily, flushing at its end."""
        for frame in frames:
            yield from self.push(frame)
        yield from self.flush()

    def _convert(self, ready: list[tuple[int, torch.Tensor]]) -> list[np.ndarray | torch.Tensor]:
        out = []
        for _, tensor in ready:
            kind = self._kinds.popleft()
            out.append(tensor if kind is None else tensor_to_image(tensor, kind))
        return out


def denoise_frames(frames: np.ndarray, sigma: float | str = "auto", model: str | torch.nn.Module | None = None,
                   device: str = "auto", allow_untrained: bool = False, **options: Any) -> np.ndarray:
    """Denoise a ``(T, H, W, 3)`` uint8 (or uint16) RGB array; returns the same shape and dtype.
    Further keywords are those of :class:`Denoiser`; ``adapt=True`` fine-tunes the network
    on the frames themselves first (``adapt_seconds`` bounds it; see :meth:`Denoiser.adapt`).

    >>> out = denoise_frames(np.zeros((3, 8, 8, 3), np.uint8), sigma=10, allow_untrained=True)
    >>> out.shape, out.dtype
    ((3, 8, 8, 3), dtype('uint8'))
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected a (T, H, W, 3) array, got shape {frames.shape}")
    if len(frames) == 0:
        return frames.copy()
    denoiser = Denoiser(sigma=sigma, model=model, device=device, allow_untrained=allow_untrained, **options)
    if denoiser.config.adapt.enabled:
        denoiser.adapt(frames)
    return np.stack(list(denoiser(frames)))
