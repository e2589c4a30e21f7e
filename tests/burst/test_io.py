"""Reading bursts, refusing bad ones with one clear error, writing photos with their metadata."""
from __future__ import annotations

import importlib.util
import struct

import cv2
import numpy as np
import pytest

from streamden.burst.io import (Metadata, check_output_format, list_burst, read_burst, read_frame,
                                read_metadata, write_photo)
from streamden.errors import InputError, OutputError
from tests.burst.bursts import burst_of, scene, write_burst

ICC = b"fake icc profile " * 5000          # > 64 KiB: spans two JPEG APP2 segments
# A minimal big-endian TIFF-structured EXIF block: header and an empty IFD.
EXIF = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 0) + b"\x00\x00\x00\x00"


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shots")
    return write_burst(folder, burst_of(scene(64), frames=3))


def test_list_burst_takes_folders_globs_and_files(shots):
    folder = shots[0].parent
    assert list_burst(folder) == shots
    assert list_burst(str(folder / "shot_0*.png")) == shots
    assert list_burst([shots[2], shots[0]]) == [shots[2], shots[0]]


@pytest.mark.parametrize("entry, message", [
    ("missing.png", "no such file or folder"),
    ("nothing_*.png", "no images match"),
])
def test_list_burst_names_the_missing_entry(tmp_path, entry, message):
    with pytest.raises(InputError, match=message) as err:
        list_burst([tmp_path / entry])
    assert entry in str(err.value)


def test_empty_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="folder holds no images"):
        list_burst(tmp_path)


def test_read_burst_reads_16_bit_frames_in_range(shots):
    frames = read_burst(shots)
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0


def test_mixed_sizes_name_the_odd_file(shots, tmp_path):
    odd = tmp_path / "odd.png"
    cv2.imwrite(str(odd), np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(InputError, match="odd.png: size 48x32 differs from 64x64"):
        read_burst([shots[0], odd])


def test_fewer_than_two_frames(shots):
    with pytest.raises(InputError, match="at least 2 frames"):
        read_burst(shots[:1])


def test_unreadable_image_is_named(shots, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(InputError, match="bad.png: not an image"):
        read_burst([shots[0], bad])


@pytest.mark.skipif(importlib.util.find_spec("rawpy") is not None, reason="rawpy is installed")
def test_raw_without_the_extra_names_it(tmp_path):
    raw = tmp_path / "shot.dng"
    raw.write_bytes(b"II*\x00" + bytes(64))
    with pytest.raises(InputError, match=r"shot.dng: .*streamden\[raw\]"):
        read_frame(raw)


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
def test_png_and_tiff_are_16_bit(tmp_path, ext):
    image = np.linspace(0, 1, 16 * 16 * 3, dtype=np.float32).reshape(16, 16, 3)
    write_photo(tmp_path / f"out{ext}", image)
    back = cv2.imread(str(tmp_path / f"out{ext}"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    assert np.abs(back[:, :, ::-1] / 65535.0 - image).max() < 1e-4


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_exif_and_icc_are_carried_over(tmp_path, ext):
    path = tmp_path / f"out{ext}"
    carried = write_photo(path, np.full((16, 16, 3), 0.5, np.float32), Metadata(EXIF, ICC))
    assert carried == ("exif", "icc")
    assert read_metadata(path) == Metadata(EXIF, ICC)
    assert cv2.imread(str(path)) is not None          # still a valid file for a decoder


def test_unsupported_output_format_is_refused():
    with pytest.raises(OutputError, match="cannot write .bmp"):
        check_output_format("night.bmp")


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "missing_dir" / "out.png"
    with pytest.raises(OutputError):
        write_photo(target, np.zeros((4, 4, 3), np.float32))
    assert not list(tmp_path.rglob("*.png"))
