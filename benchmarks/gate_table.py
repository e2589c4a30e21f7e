"""Issue 19's gate table from `streamden eval --degradation ... --json` files of the same grid.

    python benchmarks/gate_table.py benchmarks/training/fastdvdnet_real2/real2_gate.json \
        real3=benchmarks/training/fastdvdnet_real3/real3_gate.json

The first file gives the classics (NLM-multi and CBM3D at their best strength). It may also
give a model. Each `LABEL=FILE` adds one model's `--sigma auto` and best-fixed columns. The
noisy inputs of all files must be the same: same seed, frames and crop. That is checked.
The gate, per row, for the last model:
- `--sigma auto` at least 1.0 dB above the better classic;
- within 0.3 dB of the same model at its best fixed level.
Mean PSNR (dB) over the clips.
"""
from __future__ import annotations

import argparse
import json
import math

GATE_OVER_CLASSIC = 1.0
GATE_TO_FIXED = 0.3


def means(path: str) -> dict[str, dict[str, float]]:
    """``{degradation: {method: mean PSNR}}`` of one eval JSON file."""
    with open(path) as f:
        data = json.load(f)
    return {level: {method: row["psnr"] for method, row in methods.items()} for level, methods in data["mean"].items()}


def effective_levels(path: str) -> dict[str, float]:
    """The mean effective level of each degradation (its noisy rows)."""
    with open(path) as f:
        rows = json.load(f)["rows"]
    levels: dict[str, list[float]] = {}
    for row in rows:
        if row["method"] == "noisy":
            levels.setdefault(row["degradation"], []).append(row["effective"])
    return {k: sum(v) / len(v) for k, v in levels.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("classics", help="eval JSON with the nlm and cbm3d rows")
    parser.add_argument("models", nargs="+", help="LABEL=eval JSON with the model (auto) and fixed rows")
    args = parser.parse_args()
    base = means(args.classics)
    models = [(label, means(path)) for label, path in (m.split("=", 1) for m in args.models)]
    for label, table in models:
        for level, row in table.items():
            if abs(row["noisy"] - base[level]["noisy"]) > 0.005:
                raise SystemExit(f"{label}: the noisy input of {level!r} differs from {args.classics}'s "
                                 f"({row['noisy']:.3f} vs {base[level]['noisy']:.3f} dB): not the same grid")
    levels = effective_levels(args.classics)
    head = ["degradation", "level", "noisy", "NLM best", "CBM3D best"]
    for label, _ in models:
        head += [f"{label}, auto", f"{label}, best fixed"]
    head += ["auto - better classic", "auto - best fixed", "gate"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for level, row in base.items():
        classic = max(row.get("nlm", -math.inf), row.get("cbm3d", -math.inf))
        cells = [level, f"{levels[level]:.1f}", f"{row['noisy']:.2f}", f"{row.get('nlm', math.nan):.2f}",
                 f"{row.get('cbm3d', math.nan):.2f}"]
        for _, table in models:
            cells += [f"{table[level]['model']:.2f}", f"{table[level]['fixed']:.2f}"]
        last = models[-1][1][level]
        over, to_fixed = last["model"] - classic, last["model"] - last["fixed"]
        passed = over >= GATE_OVER_CLASSIC and to_fixed >= -GATE_TO_FIXED
        cells += [f"{over:+.2f}", f"{to_fixed:+.2f}", "pass" if passed else "no"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
