"""`streamden burst` and `streamden.denoise_burst`: files in, one photo out, clear errors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import streamden
from streamden.burst.io import Metadata, read_metadata, write_photo
from streamden.cli import main
from streamden.errors import ConfigError, InputError, OutputError
from tests.burst.bursts import burst_of, scene, write_burst
from tests.burst.test_io import EXIF, ICC


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return write_burst(tmp_path_factory.mktemp("shots"), burst_of(scene(96), frames=4, sigma=25))


def test_cli_writes_a_16_bit_photo(shots, tmp_path, capsys):
    out = tmp_path / "night.tiff"
    assert main(["burst", str(shots[0].parent), "-o", str(out)]) == 0
    image = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint16 and image.shape == (96, 96, 3)
    assert "wrote" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*partial*"))


def test_cli_carries_exif_and_icc_from_jpeg_shots(tmp_path):
    burst = burst_of(scene(64), frames=3, sigma=20)
    paths = []
    for i, frame in enumerate(burst.noisy):
        paths.append(tmp_path / f"shot{i}.jpg")
        write_photo(paths[-1], frame, Metadata(EXIF, ICC))
    out = tmp_path / "night.png"
    assert main(["burst", *map(str, paths), "-o", str(out), "--reference", "1", "--sigma", "20",
                 "--method", "merge"]) == 0
    assert read_metadata(out) == Metadata(EXIF, ICC)


@pytest.mark.parametrize("args, code, message", [
    (["missing.png", "{0}"], 2, "missing.png: no such file or folder"),
    (["{0}/shot_00.png"], 2, "at least 2 frames"),
    (["{0}", "--reference", "9"], 2, "reference frame 9 is out of range for a burst of 4 frames"),
    (["{0}", "--frames", "1"], 4, "frames must be at least 2"),
    (["{0}", "--sigma", "loud"], 4, "sigma must be a number"),
])
def test_cli_bad_input_exits_with_one_message(shots, tmp_path, capsys, args, code, message):
    folder = str(shots[0].parent)
    out = tmp_path / "night.png"
    assert main(["burst", *[a.format(folder) for a in args], "-o", str(out)]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
    assert not list(tmp_path.iterdir())


def test_existing_output_is_refused_before_any_work(shots, tmp_path):
    out = tmp_path / "night.png"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="exists"):
        streamden.denoise_burst(shots, out, method="merge")
    assert out.read_bytes() == b"keep me"


def test_api_returns_the_image_and_honours_frames_and_reference(shots):
    result = streamden.denoise_burst(shots, frames=3, reference=2, sigma=25, method="merge")
    assert result.reference == 2 and result.path is None
    assert tuple(result.image.shape) == (3, 96, 96)
    assert result.to_numpy().dtype == np.uint16


def test_api_errors_are_typed(shots):
    with pytest.raises(ConfigError):
        streamden.denoise_burst(shots, method="magic")
    with pytest.raises(InputError):
        streamden.denoise_burst(shots[:1])
