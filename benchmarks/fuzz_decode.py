"""Long seeded fuzz run of the decoding layer (outside CI): corrupt, decode, count.

A corpus of tiny clips (H.264, HEVC, MPEG-4 part 2, FFV1 in MP4, Matroska and MPEG-TS;
even and odd sizes, 8 and 10 bits) gets seeded damage: byte flips, random bursts,
zeroed runs, truncation, duplicated and swapped chunks. Each damaged file is decoded

* by streamden (:class:`streamden.io.isolated.IsolatedVideoSource`, damage tolerated up to
  100% so that every frame it can get is counted, stall limit 10 s), and
* by a plain PyAV loop (``for frame in container.decode(video=0)``, stopping at the first
  exception) in a child process, the baseline "what a naive decoder gets".

It prints, and writes as JSON with ``--json``: cases tried, clean refusals (InputError),
decoder crashes survived (the child died from a signal), hangs over 10 s, other failures
(bugs: any exception that is not an InputError), and frames delivered by streamden against
frames the plain decode got. Run from the repository root:

    python benchmarks/fuzz_decode.py --minutes 5 --seed 1 --json runs/fuzz.json

Every case is reproducible from its seed (``--replay SEED`` decodes that one case and
keeps the file in ``--keep DIR``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamden.errors import InputError  # noqa: E402
from streamden.io.isolated import IsolatedVideoSource, _mp_context  # noqa: E402
from tests.media import has_codec, make_video  # noqa: E402

HANG_SECONDS = 10.0
CORPUS = [  # (codec, pix_fmt, size, extension)
    ("libx264", "yuv420p", (64, 48), ".mp4"), ("libx264", "yuv420p", (64, 48), ".mkv"),
    ("libx264", "yuv420p", (64, 48), ".ts"), ("libx264", "yuv444p", (63, 47), ".mkv"),
    ("libx264", "yuv420p10le", (64, 48), ".mp4"), ("libx265", "yuv420p", (64, 48), ".mp4"),
    ("libx265", "yuv420p", (64, 48), ".mkv"), ("libx265", "yuv420p", (64, 48), ".ts"),
    ("mpeg4", "yuv420p", (64, 48), ".mp4"), ("mpeg4", "yuv420p", (64, 48), ".mkv"),
    ("mpeg4", "yuv420p", (64, 48), ".ts"), ("ffv1", "yuv420p", (65, 33), ".mkv"),
]


def make_corpus(folder: Path) -> list[Path]:
    """The clean clips (12 frames, keyframe every 4; some with audio)."""
    clips = []
    for i, (codec, pix_fmt, size, ext) in enumerate(CORPUS):
        if not has_codec(codec):
            continue
        audio = "aac" if ext in (".mp4", ".ts") and i % 2 == 0 else None
        clips.append(make_video(folder / f"clip{i:02d}-{codec}{ext}", frames=12, size=size, codec=codec,
                                pix_fmt=pix_fmt, gop=4, audio=audio))
    return clips


def damage(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One seeded mutation of ``data`` and its description."""
    buf = bytearray(data)
    kind = rng.choice(["flips", "burst", "zeros", "truncate", "duplicate", "swap", "mixed"])
    n = len(buf)
    if kind in ("flips", "mixed"):
        for _ in range(int(rng.integers(1, 17))):
            buf[int(rng.integers(0, n))] ^= int(rng.integers(1, 256))
    if kind in ("burst", "mixed"):
        for _ in range(int(rng.integers(1, 4))):
            size = int(rng.integers(8, 513))
            at = int(rng.integers(0, max(1, n - size)))
            buf[at:at + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    if kind == "zeros":
        size = int(rng.integers(16, 2049))
        at = int(rng.integers(0, max(1, n - size)))
        buf[at:at + size] = bytes(min(size, n - at))
    if kind == "truncate":
        buf = buf[:int(rng.integers(1, n))]
    if kind == "duplicate":
        size = int(rng.integers(16, 1025))
        at = int(rng.integers(0, max(1, n - size)))
        buf[at:at] = buf[at:at + size]
    if kind == "swap":
        size = int(rng.integers(16, 513))
        a, b = sorted(int(x) for x in rng.integers(0, max(1, n - size), 2))
        if b - a >= size:
            buf[a:a + size], buf[b:b + size] = buf[b:b + size], buf[a:a + size]
    return bytes(buf), str(kind)


def plain_count(path: str, queue) -> None:
    """Child: frames a naive PyAV loop gets before its first exception."""
    import av

    count = 0
    try:
        with av.open(path, metadata_errors="replace") as container:
            for _ in container.decode(video=0):
                count += 1
    except Exception:  # noqa: BLE001 - the naive loop stops at any error
        pass
    queue.put(count)


def run_plain(path: Path) -> tuple[int | None, str]:
    """(frames, "ok" | "crash" | "hang") of the plain decode, in a child process."""
    ctx = _mp_context()
    queue = ctx.Queue()
    # This script has a main guard, so the child may import it (plain_count lives here).
    proc = ctx.Process(target=plain_count, args=(str(path), queue), daemon=True)
    proc.start()
    proc.join(HANG_SECONDS)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return None, "hang"
    if proc.exitcode != 0:
        return None, "crash"
    return queue.get(timeout=5), "ok"


def run_streamden(path: Path) -> dict:
    """Decode with streamden; the outcome and the frames delivered."""
    started = time.monotonic()
    result = {"outcome": "played", "frames": 0}
    try:
        source = IsolatedVideoSource(path, max_corrupt_fraction=1.0, stall_seconds=HANG_SECONDS)
        for _ in source.generate():
            result["frames"] += 1
        if source.crashed:
            result["outcome"] = "stalled" if "stalled" in source.crashed else "crash survived"
        result["problems"] = source.problems.summary()
    except InputError as exc:
        result["outcome"] = "refused"
        result["reason"] = str(exc).split("\n")[0]
        if "stalled" in str(exc):
            result["outcome"] = "stalled"
        elif "crashed" in str(exc):
            result["outcome"] = "crash survived"
    except Exception:  # noqa: BLE001 - a bug: recorded, the run goes on
        result["outcome"] = "bug"
        result["traceback"] = traceback.format_exc()
    result["seconds"] = time.monotonic() - started
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to run (default 5)")
    parser.add_argument("--cases", type=int, default=0, help="stop after this many cases (0: time only)")
    parser.add_argument("--seed", type=int, default=0, help="first case seed")
    parser.add_argument("--json", help="write the tallies (and every non-clean case) here")
    parser.add_argument("--replay", type=int, help="run only the case with this seed")
    parser.add_argument("--keep", help="folder to keep the damaged file of --replay in")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="streamden-fuzz-") as tmp:
        folder = Path(tmp)
        clips = make_corpus(folder)
        tally = {"cases": 0, "played": 0, "refused": 0, "crash survived": 0, "stalled": 0, "bug": 0,
                 "hangs over 10 s": 0, "frames delivered": 0, "frames plain decode": 0,
                 "plain decode crashed": 0, "plain decode hung": 0, "cases with fewer frames than plain": 0}
        notable = []
        deadline = time.monotonic() + args.minutes * 60
        seed = args.replay if args.replay is not None else args.seed
        while True:
            rng = np.random.default_rng(seed)
            clip = clips[int(rng.integers(0, len(clips)))]
            data, kind = damage(clip.read_bytes(), rng)
            path = Path(args.keep or folder) / f"case-{seed}{clip.suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            ours = run_streamden(path)
            plain, plain_state = run_plain(path)
            tally["cases"] += 1
            tally[ours["outcome"]] += 1
            tally["frames delivered"] += ours["frames"]
            if ours["seconds"] > HANG_SECONDS:
                tally["hangs over 10 s"] += 1
            if plain_state == "ok":
                tally["frames plain decode"] += plain
                if ours["frames"] < plain:
                    tally["cases with fewer frames than plain"] += 1
            else:
                tally["plain decode crashed" if plain_state == "crash" else "plain decode hung"] += 1
            if ours["outcome"] in ("bug", "stalled", "crash survived") or plain_state != "ok" or (
                    plain_state == "ok" and ours["frames"] < plain):
                notable.append({"seed": seed, "clip": clip.name, "damage": kind, "plain": plain,
                                "plain_state": plain_state, **ours})
            if args.keep is None:
                path.unlink()
            seed += 1
            if args.replay is not None or (args.cases and tally["cases"] >= args.cases) \
                    or time.monotonic() > deadline:
                break
            if tally["cases"] % 100 == 0:
                print(f"... {tally['cases']} cases", file=sys.stderr, flush=True)
    width = max(len(k) for k in tally)
    for key, value in tally.items():
        print(f"{key.ljust(width)}  {value}")
    for case in notable[:20]:
        print(json.dumps({k: v for k, v in case.items() if k != "traceback"}))
        if "traceback" in case:
            print(case["traceback"])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"tally": tally, "first_seed": args.seed, "notable": notable},
                                              indent=1))
    return 1 if tally["bug"] or tally["hangs over 10 s"] else 0


if __name__ == "__main__":
    sys.exit(main())
