"""The ``streamden`` command: denoise, live, info, sample, bench, train, adapt, eval, models, import, export."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from .cpu import tune_malloc
from .errors import Cancelled, ConfigError, StreamdenError

STRENGTH_HELP = ("scale the noise level the network is given: 0.25-4 (default 1); above 1 removes more "
                 "(residual noise, blotches), below 1 keeps more detail and grain (README \"Strength\")")

# x264/x265 speed presets: `--preset` takes these as the encoder's, any other name as a config preset.
ENCODER_SPEEDS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


def _add_denoise(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("denoise", help="denoise a video file or image sequence",
                       description="Denoise IN into OUT. Audio and subtitle streams are copied packet for packet; "
                                   "the output keeps the source's frame rate (constant) and timestamps.")
    p.add_argument("input", help="video file, image folder, printf pattern (frames/%%05d.png) or glob")
    p.add_argument("-o", "--output", required=True, help="output file (.mp4 .mkv .mov ...) or image pattern")
    p.add_argument("--preset", default="restoration",
                   help="config preset from configs/ (restoration, surveillance, night_burst), or an encoder "
                        f"speed preset ({', '.join(ENCODER_SPEEDS[:4])}, ...) applied on top of restoration")
    p.add_argument("--config", help="a YAML config file (replaces the preset)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set encode.crf=20 (repeatable)")
    p.add_argument("--sigma", help="noise level on the 0-255 scale, or 'auto' to estimate it per frame")
    p.add_argument("--strength", type=float, metavar="K", help=STRENGTH_HELP)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where the network runs (default auto)")
    p.add_argument("--model", help="registered model name or a .safetensors file")
    p.add_argument("--align", choices=["auto", "none", "flow"],
                   help="motion-compensate the neighbours with optical flow before fusion; auto (default) "
                        "follows the model (fastdvdnet-aligned: flow)")
    p.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"],
                   help="network arithmetic: auto (default: fp16 on CUDA, bf16 on a CPU with native bf16, "
                        "else fp32); see README \"Speed\"")
    p.add_argument("--backend", choices=["torch", "onnxruntime"],
                   help="what runs the network: torch (default) or onnxruntime (needs streamden[onnx]; --model may "
                        "then be an export NAME.onnx, e.g. an int8 one); see README \"ONNX\"")
    p.add_argument("--codec", choices=["h264", "h265", "av1", "ffv1", "png", "tiff"], help="output codec")
    p.add_argument("--crf", type=int, help="encoder quality (lower is better; default from the preset)")
    p.add_argument("--encoder-preset", choices=ENCODER_SPEEDS, help="encoder speed preset")
    p.add_argument("--fps", help="output frame rate, e.g. 25 or 30000/1001 (default: the source's)")
    p.add_argument("--stream", type=int, help="index of the video stream to denoise (default: the first)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--stats", action="store_true", help="print per-stage throughput, latency and queue depth")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", action="store_true",
                   help="run as a resumable job in segments (work folder .OUT.segments beside OUT); "
                        "rerun the same command to continue after an interruption")
    p.add_argument("--max-pixels", type=int, metavar="N",
                   help="refuse inputs whose declared frame size exceeds N pixels (default 8192x8192)")
    p.add_argument("--tile", type=int, metavar="PX",
                   help="run the network on overlapping tiles of PX pixels (huge frames; CUDA tiles "
                        "automatically when it runs out of memory)")
    p.add_argument("--no-isolate", action="store_true",
                   help="decode in this process instead of a child process (a decoder crash then ends the job)")
    p.add_argument("--hwaccel", choices=["none", "cuda", "auto"],
                   help="video decoder: none (software, default), cuda (NVDEC or an error), auto (NVDEC "
                        "when it works, else software)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run the segments as Ray tasks on the cluster at ADDRESS (e.g. auto or HOST:6379; "
                        "none: a local Ray); resumable like --resume; needs streamden[distributed]")
    p.add_argument("--workers", type=int, help="with --ray: at most this many segments at once (default: all "
                                               "the cluster runs)")
    p.add_argument("--cpus-per-task", type=float, default=1, help="with --ray: CPUs (torch threads) per task")
    _add_preview_options(p)
    p.add_argument("--adapt", action="store_true",
                   help="first fine-tune the model on a sample of this input (self-supervised, no clean data), "
                        "then denoise all of it with the adapted model; see `streamden adapt`")
    p.add_argument("--adapt-seconds", type=float, metavar="S",
                   help="with --adapt: adaptation budget in seconds (default: under half the estimated "
                        "denoising time); implies --adapt")
    p.set_defaults(run=_run_denoise)


def _add_preview_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preview", type=int, metavar="PORT",
                   help="serve a preview page at http://127.0.0.1:PORT/: input and output side by side or as "
                        "a wipe, a 1:1 zoom, live counters (0: a free port; the address is printed)")
    p.add_argument("--preview-host", metavar="HOST",
                   help="with --preview: listen on HOST instead (0.0.0.0: every interface); every request "
                        "then needs the random access token printed at start")


def _open_preview(args: argparse.Namespace, title: str):
    """The preview of ``--preview``, bound (a busy port fails before any work) but not yet
    serving: the job starts it; None without the option."""
    _require(args.preview_host is None or args.preview is not None, "--preview-host needs --preview PORT")
    if args.preview is None:
        return None
    from .preview import open_preview

    return open_preview(args.preview, args.preview_host, title=title)


def _run_denoise(args: argparse.Namespace) -> int:
    from .api import denoise_video

    preset, encoder_preset = args.preset, args.encoder_preset
    if preset in ENCODER_SPEEDS:
        preset, encoder_preset = "restoration", encoder_preset or preset
    if args.adapt_seconds is not None:
        _require(args.adapt_seconds > 0, f"--adapt-seconds must be positive seconds, got {args.adapt_seconds:g}")
    adapt = True if (args.adapt or args.adapt_seconds is not None) else None
    _require(not (adapt and (args.ray is not None or args.resume)),
             "--adapt does not combine with --resume or --ray: adapt once with `streamden adapt IN -o "
             "cam.safetensors`, then pass --model cam.safetensors")
    if args.ray is not None:
        _require(args.preview is None, "--preview shows a job that runs in this process; with --ray the "
                                       "segments run in Ray workers (use --resume to preview a resumable job)")
        return _run_on_ray(args, preset, encoder_preset)
    from pathlib import Path

    preview = _open_preview(args, f"streamden denoise {Path(args.input).name}")
    bar = None
    step_adapt = _AdaptProgress(args.no_progress)

    def start_bar(source) -> None:
        # The bar appears once the input is open and the network built: an error before that
        # (config, input, output, model) is the only line on stderr.
        nonlocal bar
        step_adapt.close()             # adaptation is over: its bar gives way to the denoising one
        if preview is not None:
            print(f"preview: {preview.url}", file=sys.stderr, flush=True)
        if not args.no_progress:
            from tqdm import tqdm
            bar = tqdm(total=source.estimated_frame_count, unit="frame", desc="denoise", dynamic_ncols=True,
                       file=sys.stderr)

    def step_bar(_) -> None:
        if bar is not None:
            bar.update(1)
    try:
        report = denoise_video(
            args.input, args.output, preset=None if args.config else preset, config_file=args.config,
            overrides=args.set, stream=args.stream, overwrite=args.overwrite,
            on_frame=step_bar, on_start=start_bar,
            sigma=args.sigma, strength=args.strength, device=args.device, model=args.model, align=args.align,
            codec=args.codec,
            crf=args.crf, encoder_preset=encoder_preset, fps=args.fps, resume=args.resume,
            max_pixels=args.max_pixels, tile=args.tile, isolate=False if args.no_isolate else None,
            hwaccel=args.hwaccel, precision=args.precision, preview=preview, backend=args.backend,
            adapt=adapt, adapt_seconds=args.adapt_seconds, on_adapt=step_adapt)
    except Cancelled as exc:
        if bar is not None:
            bar.close()
        if args.resume:
            print(f"streamden: {exc}", file=sys.stderr)
        else:
            print(f"streamden: interrupted; {args.output} holds the frames denoised so far", file=sys.stderr)
        report = getattr(exc, "report", None)
        if args.stats and report:
            print(report.format_table(), file=sys.stderr)
        return exc.exit_code
    finally:
        step_adapt.close()
        if bar is not None:
            bar.close()
        if preview is not None:
            preview.stop()
    adaptation = getattr(report, "adaptation", None)
    if adaptation is not None:
        print(f"streamden: adapted to {args.input}: {adaptation.summary()}", file=sys.stderr)
        for warning in adaptation.warnings():
            print(f"streamden: warning: {warning}", file=sys.stderr)
    problems = getattr(report, "input_problems", None)
    if problems is not None and problems.count:
        print(f"streamden: warning: {args.input}: {problems.summary()}", file=sys.stderr)
    if args.stats:
        print(report.format_table())
        if problems is not None:
            print(f"input: {problems.frames} frames decoded, {problems.summary()}")
        if getattr(report, "noise", None):
            print(report.noise)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _ray_config(args: argparse.Namespace, preset: str | None, encoder_preset: str | None):
    from .config import make_config

    return make_config(None if args.config else preset, args.config, args.set, sigma=args.sigma,
                       strength=args.strength, device=args.device, model=args.model, align=args.align, codec=args.codec, crf=args.crf,
                       encoder_preset=encoder_preset, fps=args.fps, max_pixels=args.max_pixels, tile=args.tile,
                       isolate=False if args.no_isolate else None, hwaccel=args.hwaccel,
                       precision=args.precision, backend=args.backend)


def _run_on_ray(args: argparse.Namespace, preset: str | None, encoder_preset: str | None) -> int:
    from .distributed import denoise_on_ray, import_ray

    import_ray()  # without Ray: one error saying how to install it, before anything else
    config = _ray_config(args, preset, encoder_preset)
    result = denoise_on_ray(args.input, args.output, address=args.ray or None, config=config,
                            stream=args.stream, overwrite=args.overwrite,
                            workers=args.workers, cpus_per_task=args.cpus_per_task)
    for warning in result.warnings:
        print(f"streamden: warning: {warning}", file=sys.stderr)
    print(f"{result.frames} frames in {result.segments} segments ({result.segments_skipped} resumed), "
          f"{result.seconds:.1f} s", file=sys.stderr)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _add_batch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="denoise many videos (files, folders, globs) into a folder, on Ray or here",
                       description="Denoise every input into DIR (same names) and print one report. With --ray the "
                                   "segments of all videos are Ray tasks; without it they run here in turn. Every "
                                   "video is a resumable job: rerun the same command to continue.")
    p.add_argument("inputs", nargs="+", metavar="IN", help="video files, folders (their videos) or globs")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--ext", help="output extension, e.g. .mkv (default: the input's)")
    p.add_argument("--preset", default="restoration", help="config preset from configs/ (default restoration)")
    p.add_argument("--config", help="a YAML config file (replaces the preset)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--sigma", help="noise level on the 0-255 scale, or 'auto'")
    p.add_argument("--strength", type=float, metavar="K", help=STRENGTH_HELP)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where the network runs (default auto)")
    p.add_argument("--model", help="registered model name or a .safetensors file")
    p.add_argument("--codec", choices=["h264", "h265", "av1", "ffv1"], help="output codec")
    p.add_argument("--crf", type=int, help="encoder quality (lower is better)")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run on the Ray cluster at ADDRESS (none: a local Ray); needs streamden[distributed]")
    p.add_argument("--workers", type=int, help="at most this many Ray tasks at once (default: all the cluster runs)")
    p.add_argument("--cpus-per-task", type=float, default=1, help="with --ray: CPUs (torch threads) per task")
    p.add_argument("--report", metavar="FILE", help="also write the report as JSON")
    p.set_defaults(run=_run_batch)


def _run_batch(args: argparse.Namespace) -> int:
    from .config import make_config
    from .distributed import denoise_batch, import_ray

    if args.ray is not None:
        import_ray()
    config = make_config(None if args.config else args.preset, args.config, args.set, sigma=args.sigma,
                         strength=args.strength, device=args.device, model=args.model, codec=args.codec,
                         crf=args.crf)
    suffix = "." + args.ext if args.ext and not args.ext.startswith(".") else args.ext   # --ext mkv = .mkv
    report = denoise_batch(args.inputs, args.out, address=args.ray or None, use_ray=args.ray is not None,
                           config=config, suffix=suffix, overwrite=args.overwrite, workers=args.workers,
                           cpus_per_task=args.cpus_per_task)
    print(report.format_table())
    if args.report:
        report.to_json(args.report)
    return 0 if report.ok else 1


def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="check a resumable or Ray job: segment checksums, frame counts")
    p.add_argument("output", help="the job's output (its work folder .OUT.segments is checked while it exists)")
    p.add_argument("--source", help="the input: the output must have as many frames")
    p.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from .distributed import verify

    report = verify(args.output, args.source)
    for problem in report.problems:
        print(f"streamden: {problem}", file=sys.stderr)
    frames = f", {report.frames} frames" if report.frames is not None else ""
    print(f"{args.output}: {'ok' if report.ok else 'PROBLEMS'}{frames}, {report.segments_checked} segments checked")
    return 0 if report.ok else 1


def _add_burst(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("burst", help="fuse a hand-held burst of noisy photos into one clean photo (night mode)",
                       description="Align every shot to a reference (homography, then optical flow), reject what "
                                   "moved on its own, merge, and denoise the merge with the network. OUT is "
                                   "16-bit PNG/TIFF or JPEG; EXIF and ICC of the reference are kept where possible.")
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files, folders or globs (PNG, JPEG, TIFF, RAW)")
    p.add_argument("-o", "--output", required=True, help="output photo (.png .tif .tiff .jpg)")
    p.add_argument("--reference", default="sharpest", help="index of the reference frame, or 'sharpest' (default)")
    p.add_argument("--preset", default="night_burst",
                   help="config preset from configs/ (default night_burst): the model, device, precision, tiling "
                        "and noise level")
    p.add_argument("--config", help="a YAML config file (replaces the preset)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set model.precision=fp32 (repeatable)")
    p.add_argument("--sigma",
                   help="noise level on the 0-255 scale, or 'auto' (the preset's default) to fit a "
                        "Poisson-Gaussian model")
    p.add_argument("--strength", type=float, metavar="K", help=STRENGTH_HELP)
    p.add_argument("--frames", type=int, help="use only the first N frames")
    p.add_argument("--method", default="network", choices=["network", "windows", "merge", "mean"],
                   help="fusion: network (default), windows (network over 5-frame windows), merge (robust "
                        "merge only), mean (plain mean of the aligned frames)")
    p.add_argument("--no-refine", action="store_true", help="global alignment only (no optical-flow refinement)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where the network runs (default auto)")
    p.add_argument("--model", help="registered model name or a .safetensors file")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=_run_burst)


def _run_burst(args: argparse.Namespace) -> int:
    from .burst.run import denoise_burst
    from .config import make_config

    config = make_config(None if args.config else args.preset, args.config, args.set, door="burst",
                         sigma=args.sigma, strength=args.strength, model=args.model, device=args.device)
    result = denoise_burst(args.inputs, args.output, config=config, reference=args.reference,
                           frames=args.frames, method=args.method, refine=not args.no_refine,
                           overwrite=args.overwrite)
    kept = f", kept {' and '.join(result.metadata_copied)}" if result.metadata_copied else ""
    print(f"reference frame {result.reference}, noise {result.noise.sigma255():.1f} at mid-grey, "
          f"{result.frames_used:.1f} frames per pixel on average{kept}", file=sys.stderr)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print streams, codec, size, rate, duration and bit depth of a media file")
    p.add_argument("input")
    p.set_defaults(run=lambda a: _print_info(a.input))


def _print_info(path: str) -> int:
    from .io import format_info, probe

    print(format_info(probe(path)))
    return 0


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="render a small synthetic sample clip (clean and noisy, with audio)")
    p.add_argument("folder", help="where to write clean.mp4 and noisy.mp4")
    p.add_argument("--size", default="320x180", help="WIDTHxHEIGHT (default 320x180)")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--sigma", type=float, default=25.0, help="Gaussian noise level of noisy.mp4 (0-255)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(run=_run_sample)


def _run_sample(args: argparse.Namespace) -> int:
    from .sample import write_sample

    width, height = _parse_size(args.size, "--size")
    paths = write_sample(args.folder, size=(width, height), seconds=args.seconds, fps=args.fps,
                         sigma=args.sigma, overwrite=args.overwrite)
    for path in paths:
        print(path)
    return 0


def _number_list(text: str, option: str, kind: type) -> list:
    """A comma list of numbers; anything else is a ConfigError naming the option and the value."""
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a comma-separated list of numbers") from None


def _parse_size(text: str, option: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not WIDTHxHEIGHT") from None
    return width, height


def _require(ok: bool, message: str) -> None:
    """A bad option value is a ConfigError (one line, exit code 4) before any work starts."""
    if not ok:
        raise ConfigError(message)


def _add_live(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="denoise live feeds (RTSP, RTMP, HTTP, UDP, TCP, SRT, devices) at a steady rate",
                       description="Denoise live feeds into streams, HLS or segmented recordings at a constant "
                                   "frame rate with bounded latency. Sources are re-opened with backoff when they "
                                   "fail or go silent; meanwhile the last frame, then a NO SIGNAL slate, is sent.")
    p.add_argument("sources", nargs="+", metavar="SRC", help="live URL or capture device (several: one stream each)")
    p.add_argument("--out", action="append", required=True, metavar="DST",
                   help="udp://, tcp://, srt://, rtmp://, rtsp:// URL, a .m3u8 playlist (HLS), a NAME.ts file "
                        "(one recording at exactly that path; never overwritten), a folder/ or a strftime .ts "
                        "pattern such as rec/cam-%%Y%%m%%d-%%H%%M%%S.ts (segmented recording); repeatable; with "
                        "several sources each DST needs {stream}")
    p.add_argument("--preset", default="surveillance", help="config preset from configs/ (default surveillance)")
    p.add_argument("--config", help="a YAML config file (replaces the preset)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set live.read_timeout=5 (repeatable)")
    p.add_argument("--sigma", help="noise level on the 0-255 scale, or 'auto'")
    p.add_argument("--strength", type=float, metavar="K", help=STRENGTH_HELP)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where the network runs (default auto)")
    p.add_argument("--model", help="registered model name or a .safetensors file")
    p.add_argument("--fps", help="output frame rate (default: the source's nominal rate)")
    p.add_argument("--backend", choices=["torch", "onnxruntime"],
                   help="what runs the network: torch (default) or onnxruntime (needs streamden[onnx]; --model may "
                        "then be an export NAME.onnx, e.g. an int8 one); see README \"ONNX\"")
    p.add_argument("--lookahead", type=int, choices=[0, 1, 2], help="future frames to wait for (default: preset)")
    p.add_argument("--latency", type=float, help="arrival-to-emission bound in seconds (default: the larger of live.lookahead and live.lite_lookahead + 2 periods)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--stats", nargs="?", type=float, const=5.0, metavar="SECONDS",
                   help="print per-stream counters every SECONDS (default 5) and a summary at the end")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics")
    _add_preview_options(p)
    p.set_defaults(run=_run_live)


def _run_live(args: argparse.Namespace) -> int:
    import signal

    from .live import run_live

    _require(args.metrics_port is None or 0 <= args.metrics_port <= 65535,
             f"--metrics-port must be a TCP port (0-65535), got {args.metrics_port}")
    for option, value in (("--duration", args.duration), ("--stats", args.stats)):
        _require(value is None or value > 0, f"{option} must be positive seconds, got {value}")
    overrides = list(args.set)
    if args.lookahead is not None:
        overrides.append(f"live.lookahead={args.lookahead}")
    if args.latency is not None:
        overrides.append(f"live.latency={args.latency}")

    previous = []

    def on_job(job) -> None:
        try:
            previous.append(signal.signal(signal.SIGTERM, lambda *_: job.stop()))
        except ValueError:  # not the main thread
            pass

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
    preview = _open_preview(args, "streamden live")
    try:
        summaries = run_live(args.sources, args.out, preset=None if args.config else args.preset,
                             config_file=args.config, overrides=overrides, duration=args.duration,
                             metrics_port=args.metrics_port, stats_every=args.stats, print_fn=say,
                             on_job=on_job, preview=preview, sigma=args.sigma, strength=args.strength,
                             device=args.device, model=args.model, fps=args.fps, backend=args.backend)
    finally:
        if previous:
            signal.signal(signal.SIGTERM, previous[0])
        if preview is not None:
            preview.stop()
    if args.stats:
        for s in summaries:
            say(f"{s['stream']}: emitted {s['emitted']} (received {s['received']}), full {s['path_full']}, "
                f"degraded {s['degraded']}, late {s['late']}, dropped {s['dropped']}, repeated {s['repeated']} "
                f"(slate {s['slate']}), reconnects {s['reconnects']}, latency p50 {s['latency_p50_ms']:.0f} ms "
                f"p99 {s['latency_p99_ms']:.0f} ms, interval p99 {s['interval_p99_ms']:.1f} ms; {s['noise']}")
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="throughput per frame size (network, alignment, end to end) against the "
                                     "naive baseline in the same run (`bench live`: live latency and cadence)")
    p.add_argument("what", nargs="?", choices=["live"], help="live: the live pipeline at 640x360 and 1280x720")
    p.add_argument("--sizes", default=None, help="comma list of 540p, 1080p, 2160p or WIDTHxHEIGHT "
                                                 "(default 540p; bench live: 640x360,1280x720)")
    p.add_argument("--frames", type=int, default=16, help="frames per measurement (default 16)")
    p.add_argument("--parts", default=None, help="comma list of network, align, end_to_end (default all)")
    p.add_argument("--encoder-preset", default="veryfast", help="libx264 preset end to end (default veryfast)")
    p.add_argument("--repeat", type=int, default=2, help="timed runs per row, the best counts (default 2)")
    p.add_argument("--model", default=None, help="registry name or .safetensors (default: the restoration model)")
    p.add_argument("--seconds", type=float, default=20.0, help="bench live: seconds per size (default 20)")
    p.add_argument("--fps", type=float, default=25.0, help="bench live: the camera's frame rate (default 25)")
    p.add_argument("--record", action="store_true",
                   help="bench live: also encode the output to a temporary H.264 file (the encoder's CPU share)")
    p.add_argument("--viewer", nargs="?", type=int, const=1, default=0, metavar="PAIRS",
                   help="bench live: PAIRS (default 1) pairs of runs per size, without and with a --preview "
                        "watched as its page does; compares their full-path frames")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="bench live: override a key of the surveillance preset, e.g. --set live.latency=30")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                   help="onnxruntime: add its rows (network, end to end) beside torch's; --model may be an "
                        "export NAME.onnx (needs streamden[onnx])")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--report", help="also write the markdown tables to this file")
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from .bench import PARTS, parse_size

    default_sizes = "640x360,1280x720" if args.what == "live" else "540p"
    try:
        sizes = [parse_size(t) for t in (args.sizes or default_sizes).split(",")]
    except ValueError as exc:
        raise ConfigError(f"streamden bench: {exc}") from None
    if args.what == "live":
        from .bench_live import run_live_bench

        _require(args.seconds > 0, f"streamden bench live: --seconds must be positive, got {args.seconds:g}")
        _require(args.fps > 0, f"streamden bench live: --fps must be positive, got {args.fps:g}")
        _require(args.backend == "torch", "streamden bench live: --backend is for the file benchmark "
                                          "(streamden live --backend onnxruntime runs the live pipeline on it)")
        _require(args.viewer >= 0, f"streamden bench live: --viewer takes a number of pairs (0 or more), got {args.viewer}")
        result = run_live_bench(sizes, seconds=args.seconds, fps=args.fps, device=args.device, model=args.model,
                                viewer=args.viewer, overrides=args.set, record=args.record)
        print(result.format_table())
        if args.json:
            result.to_json(args.json)
        return 0
    from pathlib import Path

    from .bench import run_bench

    _require(not args.set and not args.viewer, "streamden bench: --set and --viewer are options of bench live")

    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip()) if args.parts else PARTS
    _require(not set(parts) - set(PARTS),
             f"streamden bench: unknown parts {sorted(set(parts) - set(PARTS))}; choose from {', '.join(PARTS)}")
    _require(args.frames >= 1, f"streamden bench: --frames must be at least 1, got {args.frames}")
    _require(args.repeat >= 1, f"streamden bench: --repeat must be at least 1, got {args.repeat}")
    result = run_bench(sizes, frames=args.frames, device=args.device, parts=parts,
                       encoder_preset=args.encoder_preset, repeat=args.repeat, model=args.model,
                       backend=args.backend)
    table = result.format_table()
    print(table)
    if args.json:
        result.to_json(args.json)
    if args.report:
        Path(args.report).write_text(table + "\n")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a denoising network (see configs/train/)")
    p.add_argument("--config", default=None, help="training YAML (default: configs/train/fastdvdnet.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint of the run")
    p.add_argument("--export", metavar="OUT.safetensors",
                   help="do not train: write the weights of the run's last checkpoint (its weight average when "
                        "the run keeps one) to OUT, e.g. to evaluate a run that is still going")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .resources import configs_dir
    from .train.config import TrainConfig
    from .train.trainer import export_checkpoint, train

    path = args.config or configs_dir() / "train" / "fastdvdnet.yaml"
    config = load_config(TrainConfig, path, args.set)
    if args.export:
        print(f"weights: {export_checkpoint(config, args.export)}")
        return 0
    weights = train(config, resume=args.resume)
    print(f"weights: {weights}")
    return 0


def _add_adapt(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapt", help="fine-tune the model on your own noisy footage (no clean data) into a weights file",
                       description="Self-supervised adaptation (frame-to-frame training): the model learns your "
                                   "camera's noise from the noisy videos alone, each frame's neighbours, aligned by "
                                   "optical flow, serving as targets. Frames held out check that it improves; the "
                                   "best weights are written. Use them anywhere with --model OUT.")
    p.add_argument("inputs", nargs="+", metavar="IN", help="noisy video files or image sequences (folders, patterns)")
    p.add_argument("-o", "--output", required=True, help="weights file to write (.safetensors)")
    p.add_argument("--model", help="model to start from: a registered name or a .safetensors file (default: the "
                                   "default model)")
    p.add_argument("--steps", type=int, help="at most this many training steps (default 300)")
    p.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop after this many seconds (default: none)")
    p.add_argument("--sigma", help="noise level of the footage on the 0-255 scale, or 'auto' (default) to estimate it")
    p.add_argument("--frames", type=int, help="frames read per input, in runs of 8 spread over it (default 64)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted or finished run of OUT (its state: .OUT.adapt.pt beside OUT)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where it trains (default auto)")
    p.add_argument("--config", help="a YAML config file (model, align, noise.sigma, input, adapt sections)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set adapt.lr=0.00005 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_adapt)


class _AdaptProgress:
    """The adaptation progress bar of `streamden adapt` and `denoise --adapt`: steps, loss,
    held-out loss and the time left (nothing with ``quiet``). Call it with each progress
    record; :meth:`close` ends the bar."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None

    def __call__(self, progress) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=progress.steps, unit="step", desc="adapt", dynamic_ncols=True, file=sys.stderr)
        self.bar.update(progress.step - self.bar.n)
        left = f", {max(0.0, progress.budget - progress.seconds):.0f} s left" if progress.budget > 0 else ""
        self.bar.set_postfix_str(f"loss {progress.loss:.4g}, held-out {progress.held_out:.4g} "
                                 f"(from {progress.initial:.4g}){left}", refresh=False)

    def close(self) -> None:
        """End the bar (if one was shown)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _run_adapt(args: argparse.Namespace) -> int:
    from .config import make_config
    from .train.adapt import adapt_files

    if args.time_budget is not None:
        _require(args.time_budget > 0, f"--time-budget must be positive seconds, got {args.time_budget:g}")
    overrides = list(args.set)
    if args.steps is not None:
        overrides.append(f"adapt.steps={args.steps}")
    if args.frames is not None:
        overrides.append(f"adapt.frames={args.frames}")
    config = make_config(None, args.config, overrides, door="adapt", sigma=args.sigma, model=args.model,
                         device=args.device)
    show = _AdaptProgress(args.no_progress)
    try:
        result = adapt_files(args.inputs, args.output, config, seconds=args.time_budget or 0.0, resume=args.resume,
                             overwrite=args.overwrite, progress=show, handle_signals=True,
                             log=lambda text: print(f"streamden: {text}", file=sys.stderr))
    finally:
        show.close()
    for warning in result.warnings():
        print(f"streamden: warning: {warning}", file=sys.stderr)
    if result.stopped == "interrupted":
        print(f"streamden: interrupted at step {result.steps}; {args.output} holds the best weights so far; "
              f"rerun with --resume to continue", file=sys.stderr)
        return Cancelled.exit_code
    print(f"wrote {args.output}: {result.summary()}", file=sys.stderr)
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM on clean clips with synthetic noise, next to classic baselines")
    p.add_argument("--clean", nargs="+", required=True, help="folders of clean consecutive frames")
    p.add_argument("--sigma", default=None,
                   help="comma-separated noise levels (0-255; default 10,20,30,40,50, with --degradation 10,15,25)")
    p.add_argument("--degradation", metavar="KINDS",
                   help="comma list of gaussian, camera, compressed, camera+compressed: realistic noise "
                        "(streamden.noise.degrade), every method at its best strength over a grid")
    p.add_argument("--iso", default="iso800,iso3200,iso12800", help="camera levels (default all three)")
    p.add_argument("--codec", default="x264", help="compressed: comma list of x264, x265, jpeg (default x264)")
    p.add_argument("--crf", default="23,28", help="compressed: x264/x265 CRFs (default 23,28)")
    p.add_argument("--jpeg-quality", default="50,70,90", help="compressed with jpeg: qualities (default 50,70,90)")
    p.add_argument("--frames", type=int, help="frames per clip (default: all)")
    p.add_argument("--crop", type=int, help="centre crop size in pixels (default: whole frame)")
    p.add_argument("--model", help="registered model name or a .safetensors file")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-nlm", action="store_true", help="skip the (slow) OpenCV NLM baseline")
    p.add_argument("--no-cbm3d", action="store_true", help="skip the (slowest) CBM3D baseline of the eval extra")
    p.add_argument("--align", choices=["auto", "none", "flow"], default="auto",
                   help="motion alignment of the model's windows (default auto: what the model was trained with)")
    p.add_argument("--ensemble", type=int, default=1, metavar="N",
                   help="the network's self-ensemble: 1, 2, 4 or 8 flipped/rotated passes averaged (model.ensemble)")
    p.add_argument("--no-refine", action="store_true",
                   help="the network alone, without the Wiener pass over its output (model.refine)")
    p.add_argument("--json", help="write the table as JSON")
    p.add_argument("--csv", help="write the table as CSV")
    p.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate
    from .tensors import resolve_device

    text = args.sigma or ("10,15,25" if args.degradation else "10,20,30,40,50")
    sigmas = _number_list(text, "--sigma", float)
    _require(bool(sigmas) and all(0 <= s <= 255 for s in sigmas),
             f"--sigma {text!r}: give noise levels in [0, 255] (0-255 scale)")
    degradations = None
    if args.degradation:
        from .noise.degrade import degradation_grid

        try:
            degradations = degradation_grid(
                [k.strip() for k in args.degradation.split(",") if k.strip()], sigmas,
                [i.strip() for i in args.iso.split(",") if i.strip()],
                [c.strip() for c in args.codec.split(",") if c.strip()],
                _number_list(args.crf, "--crf", int), _number_list(args.jpeg_quality, "--jpeg-quality", int))
        except ValueError as exc:
            raise ConfigError(f"--degradation: {exc}") from None
    _require(args.frames is None or args.frames >= 1, f"--frames must be at least 1, got {args.frames}")
    _require(args.crop is None or args.crop >= 1, f"--crop must be at least 1 pixel, got {args.crop}")
    baselines = ("noisy",) if args.no_nlm else ("noisy", "nlm")
    if not args.degradation:   # the single-frame baseline costs a run per grid step: Gaussian runs only
        baselines += ("single",)
    result = evaluate(args.clean, sigmas, model=args.model, frames=args.frames, crop=args.crop,
                      seed=args.seed, device=str(resolve_device(args.device)), baselines=baselines,
                      cbm3d=not args.no_cbm3d, align=args.align, degradations=degradations, ensemble=args.ensemble,
                      refine=not args.no_refine)
    print(result.format_table())
    if args.json:
        result.to_json(args.json)
    if args.csv:
        result.to_csv(args.csv)
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models and whether their weights ship")
    p.set_defaults(run=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from .models.cost import multiply_adds_per_pixel
    from .models.registry import DEFAULT_MODEL, build_model, list_models

    from .config import NoiseConfig, make_config, preset_names

    for card in list_models():
        state = "trained" if card.is_trained else "NO WEIGHTS"
        default = {DEFAULT_MODEL: " (default of every front door)",
                   NoiseConfig().auto_model: " (default with --sigma auto: real footage)"}.get(card.name, "")
        cost = multiply_adds_per_pixel(build_model(card.architecture, **card.arch_kwargs).eval())
        print(f"{card.name}{default}  [{state}]  align: {card.align}  cost: {cost:,.0f} multiply-adds per pixel "
              f"per streamed frame  {card.description}")
    def models_of(preset: str | None) -> str:
        known, auto = make_config(preset, sigma=20).model.name, make_config(preset, sigma="auto").model.name
        return known if auto == known else f"{auto} with sigma auto (noise.auto_model), {known} with a known sigma"

    print("presets: " + ", ".join(f"{name} -> {models_of(name)}" for name in preset_names()))
    for door, (preset, how) in FRONT_DOOR_MODELS.items():
        print(f"{door}: {models_of(preset)}, {how}")
    return 0


#: Each front door: the preset its model comes from (None: the config defaults) and how it runs
#: it, with the measured reason where that differs from the default model.
FRONT_DOOR_MODELS = {
    "denoise_frames, Denoiser, denoise_video, streamden denoise, --resume, --ray": (
        None, "with flow alignment (align auto)"),
    "streamden live (surveillance preset)": (
        "surveillance", "no flow: no optical flow fits a live frame's budget on a CPU, and on unaligned windows "
        "the unaligned variant (same recipe) is 0.42/0.22/0.15 dB better than fastdvdnet-aligned at sigma "
        "10/30/50 on the validation clips (streamden eval --align none); where it cannot keep up (a CPU), "
        "the lite rung runs live.lite_model (lite, at live.lite_lookahead) before the single-frame passes "
        "of its network"),
    "streamden burst, denoise_burst (night_burst preset)": (
        "night_burst", "single-frame mode on the merged burst, 512-pixel tiles"),
}


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="convert an original FastDVDnet .pth checkpoint into streamden safetensors")
    p.add_argument("checkpoint", help="original checkpoint (state dict with module.-prefixed keys)")
    p.add_argument("output", help="destination .safetensors")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(run=_run_import)


def _run_import(args: argparse.Namespace) -> int:
    from .io.atomic import check_output_path
    from .models.import_original import import_fastdvdnet_checkpoint

    # Never the checkpoint itself, a folder or a missing folder, and nothing replaced unasked.
    check_output_path(args.output, overwrite=args.overwrite, inputs=(args.checkpoint,))

    metadata = import_fastdvdnet_checkpoint(args.checkpoint, args.output)
    print(f"wrote {args.output} ({', '.join(f'{k}={v}' for k, v in sorted(metadata.items()))})")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (two stage files, dynamic sizes, metadata; fp16, int8)",
                       description="Export MODEL's two stages to OUT.stage1.onnx and OUT.stage2.onnx (dynamic batch, "
                                   "height and width; inputs frames (N,3,3,H,W) and noise_map (N,1,H,W), H and W "
                                   "multiples of 4). Each file is checked with onnx.checker and compared with torch "
                                   "in ONNX Runtime before it is written. Needs streamden[onnx].")
    p.add_argument("model", help="registered model name (streamden models) or a .safetensors file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx",
                   help="export name: writes OUT.stage1.onnx and OUT.stage2.onnx")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--fp16", action="store_true", help="half-precision weights and arithmetic (float32 inputs and "
                                                       "outputs); for GPUs and accelerators")
    p.add_argument("--int8", action="store_true", help="static int8 quantisation (QDQ), calibrated on --calibrate")
    p.add_argument("--calibrate", metavar="DIR", help="footage to calibrate int8 on: video files or frame folders")
    p.add_argument("--windows", type=int, default=24, help="calibration windows (default 24)")
    p.add_argument("--crop", type=int, default=128, help="calibration crop in pixels (default 128)")
    p.add_argument("--overwrite", action="store_true", help="replace the stage files if they exist")
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from .models.onnx_export import DEFAULT_OPSET, export_model

    _require(args.windows >= 1, f"--windows must be at least 1, got {args.windows}")
    _require(args.crop >= 16, f"--crop must be at least 16 pixels, got {args.crop}")
    result = export_model(args.model, args.output, opset=args.opset or DEFAULT_OPSET, fp16=args.fp16,
                          int8=args.int8, calibrate=args.calibrate, windows=args.windows, crop=args.crop,
                          overwrite=args.overwrite)
    print(result.summary(), file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``streamden`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="streamden", description="Video and burst denoising with deep learning.")
    parser.add_argument("--version", action="version", version=f"streamden {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_denoise, _add_batch, _add_verify, _add_live, _add_burst, _add_info, _add_sample, _add_bench, _add_train, _add_adapt, _add_eval, _add_models, _add_import, _add_export):
        add(sub)
    return parser


def one_line(message: str) -> str:
    r"""An error message as the one line the command prints (a wrapped library message is joined).

    >>> one_line("x.pth: not a checkpoint (Weights only load failed.\n\n  Unsupported operand 110\n)")
    'x.pth: not a checkpoint (Weights only load failed. Unsupported operand 110 )'
    """
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamden`` console script; returns the exit code.

    >>> main(["models"])  # doctest: +SKIP
    """
    args = build_parser().parse_args(argv)
    if args.run is not _run_bench:   # bench times the default malloc first, then tunes it itself
        tune_malloc()
    try:
        return args.run(args)
    except StreamdenError as exc:
        print(f"streamden: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("streamden: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``streamden models | head``): stop quietly, as a shell tool
        # killed by SIGPIPE would, and keep the interpreter's final flush off the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
