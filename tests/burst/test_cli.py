"""`streamden burst` and `streamden.denoise_burst`: files in, one photo out, clear errors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import streamden
from streamden.burst.io import Metadata, read_metadata, write_photo
from streamden.cli import main
from streamden.errors import ConfigError, InputError, ModelError, OutputError
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


# --- --preset, --config and --set: the burst's model, device, precision and noise come from the config ---

@pytest.fixture(scope="module")
def small_shots(tmp_path_factory):
    return write_burst(tmp_path_factory.mktemp("small"), burst_of(scene(48), frames=3, sigma=25))


def test_cli_set_model_name_runs_those_weights(small_shots, tmp_path, capsys, random_weights):
    out = tmp_path / "night.png"
    args = ["burst", str(small_shots[0].parent), "-o", str(out), "--sigma", "25", "--device", "cpu"]
    assert main([*args, "--set", f"model.name={random_weights}"]) == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (48, 48, 3)
    capsys.readouterr()
    # the key reaches the network: a weights file that is not there fails, naming it
    assert main([*args, "--set", f"model.name={tmp_path / 'none.safetensors'}", "--overwrite"]) == 5
    assert "none.safetensors: weights file not found" in capsys.readouterr().err
    # and so does model.precision (with --device as its shortcut): fp16 runs on CUDA only
    assert main([*args, "--set", f"model.name={random_weights}", "--set", "model.precision=fp16",
                 "--overwrite"]) == 4
    assert "fp16 runs on CUDA only" in capsys.readouterr().err


def test_cli_preset_and_config_file(small_shots, tmp_path, random_weights):
    out = tmp_path / "night.png"
    assert main(["burst", str(small_shots[0].parent), "-o", str(out), "--preset", "night_burst",
                 "--model", str(random_weights), "--sigma", "25"]) == 0
    assert out.is_file()
    config = tmp_path / "mine.yaml"
    config.write_text(f"model:\n  name: {random_weights}\n  device: cpu\nnoise:\n  sigma: 20\n")
    assert main(["burst", str(small_shots[0].parent), "-o", str(out), "--config", str(config), "--overwrite"]) == 0


@pytest.mark.parametrize("args, message", [
    (["--set", "nosuch=1"], "unknown config key 'nosuch'"),
    (["--set", "noise.sigma=loud"], "sigma must be a number"),
    (["--preset", "nosuch"], "unknown preset 'nosuch'"),
])
def test_cli_bad_config_is_one_line(small_shots, tmp_path, capsys, args, message):
    out = tmp_path / "night.png"
    assert main(["burst", str(small_shots[0].parent), "-o", str(out), *args]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("streamden: error: ") and err.count("\n") == 1 and message in err, err
    assert not list(tmp_path.iterdir())


def test_api_takes_a_config_and_keywords_override_it(small_shots, random_weights):
    from streamden.config import make_config

    config = make_config("night_burst", model=str(random_weights), device="cpu", sigma=25)
    result = streamden.denoise_burst(small_shots, config=config)
    assert result.noise.sigma255() == pytest.approx(25)
    missing = make_config("night_burst", model="/nonexistent.safetensors", device="cpu")
    with pytest.raises(ModelError, match="nonexistent.safetensors"):
        streamden.denoise_burst(small_shots, config=missing)
    result = streamden.denoise_burst(small_shots, config=missing, model=str(random_weights), sigma=10)
    assert result.noise.sigma255() == pytest.approx(10)
