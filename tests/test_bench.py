"""`streamden bench` at a tiny size on the CPU: every part runs and reports (no timing asserted)."""
from __future__ import annotations

import json
import math

import pytest

from streamden.bench import block_flops_per_pixel, parse_size, run_bench
from streamden.cli import main
from streamden.models.fastdvdnet import FastDVDnet


def test_sizes_parse() -> None:
    assert parse_size("540p") == (960, 540)
    assert parse_size("2160p") == (3840, 2160)
    assert parse_size("100x60") == (100, 60)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_size("big")


def test_flops_per_pixel_match_the_design_note() -> None:
    # DESIGN.md: one block costs about 159 k multiply-adds per pixel.
    assert block_flops_per_pixel(FastDVDnet()) == pytest.approx(2 * 159e3, rel=0.01)


def test_cli_bench_runs_every_part_on_a_tiny_clip(tmp_path, capsys) -> None:
    report, data = tmp_path / "bench.md", tmp_path / "bench.json"
    code = main(["bench", "--device", "cpu", "--sizes", "64x48", "--frames", "5", "--repeat", "1",
                 "--report", str(report), "--json", str(data)])
    assert code == 0
    result = json.loads(data.read_text())
    rows = result["sizes"][0]["rows"]
    parts = [r["part"] for r in rows]
    assert parts.count("network") >= 6 and parts.count("align") == 3 and parts.count("end to end") == 4
    assert parts[-2:] == ["bound", "bound"]
    assert all(math.isfinite(r["fps"]) and r["fps"] > 0 for r in rows)
    baseline = rows[0]
    assert baseline["name"].startswith("naive baseline") and baseline["ratio"] == 1.0
    assert all(r["tflops"] > 0 for r in rows if r["part"] == "network")
    assert result["peak_tflops"]["fp32"] > 0
    assert "| network | naive baseline" in report.read_text()
    assert "64x48" in capsys.readouterr().out


def test_bench_rejects_unknown_parts_and_sizes(capsys) -> None:
    assert main(["bench", "--device", "cpu", "--sizes", "huge"]) != 0
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["bench", "--device", "cpu", "--parts", "network,gpu"]) != 0
    assert "unknown parts ['gpu']" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown bench parts"):
        run_bench([(16, 16)], frames=2, device="cpu", parts=("gpu",))
