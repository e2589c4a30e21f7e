"""A PNG of training loss and validation PSNR against step, drawn with OpenCV (no matplotlib).

>>> plot_log("runs/x/log.csv", "runs/x/plot.png")  # doctest: +SKIP
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np


def read_log(path: str | Path) -> dict[str, list[float]]:
    """Columns of a training CSV log as float lists (empty cells become NaN).

    >>> read_log("runs/x/log.csv")["step"][:2]  # doctest: +SKIP
    [25.0, 50.0]
    """
    cols: dict[str, list[float]] = {}
    with Path(path).open() as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                cols.setdefault(k, []).append(float(v) if v not in ("", None) else math.nan)
    return cols


def _panel(img: np.ndarray, box: tuple[int, int, int, int], xs: list[float], ys: list[float],
           title: str, color: tuple[int, int, int], log_y: bool = False, x_label: str = "step") -> None:
    x0, y0, x1, y1 = box
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    pts = [(x, math.log10(y) if log_y else y) for x, y in zip(xs, ys)
           if math.isfinite(y) and (y > 0 or not log_y)]
    cv2.putText(img, title, (x0 + 5, y0 - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    if not pts:
        return
    px, py = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    xmin, xmax = float(min(px.min(), 0)), float(px.max()) or 1.0
    ymin, ymax = float(py.min()), float(py.max())
    if ymax - ymin < 1e-9:
        ymin, ymax = ymin - 0.5, ymax + 0.5
    sx = (x1 - x0 - 20) / max(xmax - xmin, 1e-9)
    sy = (y1 - y0 - 20) / (ymax - ymin)
    poly = np.stack([x0 + 10 + (px - xmin) * sx, y1 - 10 - (py - ymin) * sy], 1).astype(np.int32)
    cv2.polylines(img, [poly], False, color, 1, cv2.LINE_AA)
    for p in poly if len(poly) < 60 else []:
        cv2.circle(img, tuple(int(v) for v in p), 2, color, -1)
    lo, hi = (10 ** ymin, 10 ** ymax) if log_y else (ymin, ymax)
    for val, yy in ((hi, y0 + 14), (lo, y1 - 4)):
        cv2.putText(img, f"{val:.4g}", (x0 + 4, yy), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1, cv2.LINE_AA)
    cv2.putText(img, f"{x_label} {xmax:.0f}", (x1 - 90, y1 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1, cv2.LINE_AA)


def plot_log(log_csv: str | Path, out_png: str | Path, size: tuple[int, int] = (900, 640)) -> Path:
    """Draw loss (log scale) and validation PSNR from ``log_csv`` into ``out_png``; returns the path."""
    cols = read_log(log_csv)
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    steps = cols.get("step", [])
    _panel(img, (40, 30, w - 20, h // 2 - 20), steps, cols.get("loss", []), "training loss (log)", (200, 60, 0), True)
    vs = [(s, v) for s, v in zip(steps, cols.get("val_psnr", [])) if math.isfinite(v)]
    _panel(img, (40, h // 2 + 30, w - 20, h - 20), [s for s, _ in vs], [v for _, v in vs],
           "validation PSNR (dB)", (0, 120, 0))
    out = Path(out_png)
    cv2.imwrite(str(out), img)
    return out


def plot_curve(xs: list[float], ys: list[float], title: str, out_png: str | Path, x_label: str = "step",
               size: tuple[int, int] = (640, 360)) -> Path:
    """One curve ``ys`` against ``xs`` into ``out_png`` (benchmarks: gain against time); returns the path.

    >>> plot_curve([0, 30, 60], [0.0, 1.5, 2.0], "gain (dB)", "/tmp/curve.png", "s")  # doctest: +SKIP
    """
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    _panel(img, (40, 40, w - 20, h - 20), list(xs), list(ys), title, (200, 60, 0), x_label=x_label)
    out = Path(out_png)
    cv2.imwrite(str(out), img)
    return out
