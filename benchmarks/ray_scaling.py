"""Speed-up of a Ray job with 2 workers against 1, on a local Ray on this machine.

One synthetic noisy clip (streamden.sample) is denoised by
:func:`streamden.distributed.denoise_on_ray` with at most 1 and at most 2 segments in flight,
alternating, ``--repeat`` times (the fastest run of each counts). Each task has one CPU and
so one torch thread. The decoded outputs must be identical; the wall times give the ratio.
Ray start-up and the first load of the network are not counted (a warm-up run does them).
The load average is printed with the figures: on a shared machine it decides them.

    python benchmarks/ray_scaling.py --size 160x96 --frames 48 --segment-frames 12 --json runs/ray.json
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

# glibc keeps large buffers (1.3-1.9x faster torch on CPU; see DESIGN.md "Machines")
TORCH_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000", "MALLOC_TOP_PAD_": "1073741824"}


def _frames(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24").tobytes() for frame in container.decode(video=0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="160x96", help="WIDTHxHEIGHT of the clip")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--segment-frames", type=int, default=12)
    parser.add_argument("--sigma", default="25")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs given to the local Ray")
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting (the fastest counts)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    import ray

    from streamden.distributed import denoise_on_ray
    from streamden.sample import write_sample

    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fps = 25
        _, noisy = write_sample(folder, size=(width, height), seconds=args.frames / fps, fps=fps)
        ray.init(num_cpus=args.cpus, include_dashboard=False, configure_logging=False, log_to_driver=False,
                 runtime_env={"env_vars": TORCH_ENV})
        warm = folder / "warm.mkv"  # start the workers and load the network once, off the clock
        denoise_on_ray(noisy, warm, preset=None, sigma=args.sigma, codec="ffv1",
                       segment_frames=args.segment_frames, overwrite=True)
        results: dict[int, dict] = {}
        for _ in range(args.repeat):  # alternate 1 and 2 so that a change of load hits both alike
            for workers in (1, 2):
                out = folder / f"out{workers}.mkv"
                load = os.getloadavg()[0]
                started = time.perf_counter()
                job = denoise_on_ray(noisy, out, preset=None, sigma=args.sigma, codec="ffv1",
                                     segment_frames=args.segment_frames, workers=workers, overwrite=True)
                seconds = time.perf_counter() - started
                best = results.get(workers)
                if best is None or seconds < best["seconds"]:  # the best of the repeats
                    results[workers] = {"seconds": seconds, "fps": job.frames / seconds, "segments": job.segments,
                                        "cores_used": job.cpu_seconds / seconds,
                                        "load_before": load, "load_after": os.getloadavg()[0]}
        same = _frames(folder / "out1.mkv") == _frames(folder / "out2.mkv")  # Matroska headers carry random UIDs
        ray.shutdown()
    ratio = results[1]["seconds"] / results[2]["seconds"]
    print(f"clip {width}x{height}, {args.frames} frames, {results[1]['segments']} segments, sigma {args.sigma}, "
          f"local Ray with {args.cpus} CPUs, {os.cpu_count()} cores, best of {args.repeat}")
    print("| workers | seconds | frames/s | cores used (task CPU s / wall s) | load avg (1 min) before / after |")
    print("|---|---|---|---|---|")
    for workers, r in results.items():
        print(f"| {workers} | {r['seconds']:.1f} | {r['fps']:.2f} | {r['cores_used']:.2f} | "
              f"{r['load_before']:.1f} / {r['load_after']:.1f} |")
    print(f"speed-up 2 vs 1 workers: {ratio:.2f}x; outputs identical: {same}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"size": args.size, "frames": args.frames, "results": results,
                                               "speedup": ratio, "identical": same}, indent=1))


if __name__ == "__main__":
    main()
