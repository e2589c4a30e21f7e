"""A non-editable install ships configs/, kernels/ and the weights inside the package."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True)
    (path,) = out.glob("streamden-*.whl")
    return path


def test_wheel_holds_presets_kernels_and_weights(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for preset in ("restoration", "surveillance", "night_burst"):
        assert f"streamden/configs/{preset}.yaml" in names
    assert "streamden/configs/train/fastdvdnet.yaml" in names
    assert "streamden/kernels/__init__.py" in names
    for cu in [*(REPO / "kernels").glob("*.cu"), *(REPO / "kernels").glob("*.cuh")]:
        assert f"streamden/kernels/{cu.name}" in names
    assert "streamden/cuda/host_shim.h" in names             # the host emulation's shim
    for weights in (REPO / "streamden" / "models" / "weights").glob("*.safetensors"):
        assert f"streamden/models/weights/{weights.name}" in names
    assert "streamden/preview/page.html" in names


def test_installed_wheel_finds_its_own_data(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "from streamden.resources import configs_dir, kernels_dir;"
            "print(configs_dir()); print(kernels_dir())")
    result = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, check=True,
                            capture_output=True, text=True)
    configs, kernels = result.stdout.split()
    assert Path(configs).is_relative_to(target) and (Path(configs) / "restoration.yaml").is_file()
    assert Path(kernels).is_relative_to(target)
