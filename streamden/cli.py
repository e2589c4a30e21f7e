"""The ``streamden`` command: denoise, info, sample, bench, train, eval, models, import."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .errors import Cancelled, StreamdenError

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
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where the network runs (default auto)")
    p.add_argument("--model", help="registered model name or a .safetensors file")
    p.add_argument("--align", choices=["none", "flow"],
                   help="motion-compensate the neighbours with optical flow before fusion (default from the preset)")
    p.add_argument("--codec", choices=["h264", "h265", "av1", "ffv1", "png", "tiff"], help="output codec")
    p.add_argument("--crf", type=int, help="encoder quality (lower is better; default from the preset)")
    p.add_argument("--encoder-preset", choices=ENCODER_SPEEDS, help="encoder speed preset")
    p.add_argument("--fps", help="output frame rate, e.g. 25 or 30000/1001 (default: the source's)")
    p.add_argument("--stream", type=int, help="index of the video stream to denoise (default: the first)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--stats", action="store_true", help="print per-stage throughput, latency and queue depth")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_denoise)


def _run_denoise(args: argparse.Namespace) -> int:
    from .api import denoise_video

    preset, encoder_preset = args.preset, args.encoder_preset
    if preset in ENCODER_SPEEDS:
        preset, encoder_preset = "restoration", encoder_preset or preset
    bar = None
    if not args.no_progress:
        from tqdm import tqdm
        bar = tqdm(unit="frame", desc="denoise", dynamic_ncols=True, file=sys.stderr)

    def size_bar(source) -> None:
        if bar is not None:
            bar.reset(total=source.estimated_frame_count)
    try:
        report = denoise_video(
            args.input, args.output, preset=None if args.config else preset, config_file=args.config,
            overrides=args.set, stream=args.stream, overwrite=args.overwrite,
            on_frame=(lambda _: bar.update(1)) if bar is not None else None, on_start=size_bar,
            sigma=args.sigma, device=args.device, model=args.model, align=args.align, codec=args.codec,
            crf=args.crf, encoder_preset=encoder_preset, fps=args.fps)
    except Cancelled as exc:
        if bar is not None:
            bar.close()
        print(f"streamden: interrupted; {args.output} holds the frames denoised so far", file=sys.stderr)
        report = getattr(exc, "report", None)
        if args.stats and report:
            print(report.format_table(), file=sys.stderr)
        return exc.exit_code
    finally:
        if bar is not None:
            bar.close()
    if args.stats:
        print(report.format_table())
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

    width, height = _parse_size(args.size)
    paths = write_sample(args.folder, size=(width, height), seconds=args.seconds, fps=args.fps,
                         sigma=args.sigma, overwrite=args.overwrite)
    for path in paths:
        print(path)
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise StreamdenError(f"size {text!r} is not WIDTHxHEIGHT") from None
    return width, height


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure decode, network and encode throughput against baselines")
    p.add_argument("--size", default="640x360", help="WIDTHxHEIGHT (default 640x360)")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", help="also write the results to this JSON file")
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    width, height = _parse_size(args.size)
    result = run_bench(size=(width, height), frames=args.frames, device=args.device)
    print(result.format_table())
    if args.json:
        result.to_json(args.json)
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a denoising network (see configs/train/)")
    p.add_argument("--config", default=None, help="training YAML (default: configs/train/fastdvdnet.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint of the run")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .resources import configs_dir
    from .train.config import TrainConfig
    from .train.trainer import train

    path = args.config or configs_dir() / "train" / "fastdvdnet.yaml"
    config = load_config(TrainConfig, path, args.set)
    weights = train(config, resume=args.resume)
    print(f"weights: {weights}")
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM on clean clips with synthetic noise, next to classic baselines")
    p.add_argument("--clean", nargs="+", required=True, help="folders of clean consecutive frames")
    p.add_argument("--sigma", default="10,20,30,40,50", help="comma-separated noise levels (0-255)")
    p.add_argument("--frames", type=int, help="frames per clip (default: all)")
    p.add_argument("--crop", type=int, help="centre crop size in pixels (default: whole frame)")
    p.add_argument("--model", help="registered model name or a .safetensors file")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-nlm", action="store_true", help="skip the (slow) OpenCV NLM baseline")
    p.add_argument("--json", help="write the table as JSON")
    p.add_argument("--csv", help="write the table as CSV")
    p.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate
    from .tensors import resolve_device

    try:
        sigmas = [float(s) for s in args.sigma.split(",") if s.strip()]
    except ValueError:
        raise StreamdenError(f"--sigma {args.sigma!r} is not a comma-separated list of numbers") from None
    baselines = ("noisy", "single") if args.no_nlm else ("noisy", "nlm", "single")
    result = evaluate(args.clean, sigmas, model=args.model, frames=args.frames, crop=args.crop,
                      seed=args.seed, device=str(resolve_device(args.device)), baselines=baselines)
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
    from .models.registry import DEFAULT_MODEL, list_models

    for card in list_models():
        state = "trained" if card.is_trained else "NO WEIGHTS"
        default = " (default)" if card.name == DEFAULT_MODEL else ""
        print(f"{card.name}{default}  [{state}]  {card.description}")
    return 0


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="convert an original FastDVDnet .pth checkpoint into streamden safetensors")
    p.add_argument("checkpoint", help="original checkpoint (state dict with module.-prefixed keys)")
    p.add_argument("output", help="destination .safetensors")
    p.set_defaults(run=_run_import)


def _run_import(args: argparse.Namespace) -> int:
    from .models.import_original import import_fastdvdnet_checkpoint

    metadata = import_fastdvdnet_checkpoint(args.checkpoint, args.output)
    print(f"wrote {args.output} ({', '.join(f'{k}={v}' for k, v in sorted(metadata.items()))})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``streamden`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="streamden", description="Video and burst denoising with deep learning.")
    parser.add_argument("--version", action="version", version=f"streamden {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_denoise, _add_info, _add_sample, _add_bench, _add_train, _add_eval, _add_models, _add_import):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamden`` console script; returns the exit code.

    >>> main(["models"])  # doctest: +SKIP
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except StreamdenError as exc:
        print(f"streamden: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("streamden: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
