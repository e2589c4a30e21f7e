"""Presets load into typed configs; wrong keys and values are errors that name the key."""
from pathlib import Path

import pytest

from streamden.config import make_config
from streamden.config import DenoiseConfig, apply_overrides, load_config, preset_names, preset_path
from streamden.errors import ConfigError

PRESETS = preset_names()


def test_the_three_presets_exist():
    assert {"restoration", "surveillance", "night_burst"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_into_the_typed_config(name):
    config = load_config(DenoiseConfig, preset_path(name))
    assert isinstance(config.encode.crf, int)
    assert config.model.inference_options().precision == "auto"


def test_dotted_overrides_parse_values_as_yaml():
    config = apply_overrides(DenoiseConfig(), ["encode.crf=22", "encode.fps=30000/1001", "noise.sigma=25", "model.precision=fp32"])
    assert config.encode.crf == 22
    assert config.encode.fps == "30000/1001"
    assert config.noise.sigma == "25"
    assert config.model.precision == "fp32"


@pytest.mark.parametrize("override, key", [
    ("encode.crff=3", "encode.crff"),
    ("encoder.crf=3", "encoder"),
    ("encode.crf.x=3", "encode.crf"),
])
def test_unknown_override_key_is_named(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        apply_overrides(DenoiseConfig(), [override])


def test_mistyped_value_is_named():
    with pytest.raises(ConfigError, match="'encode.crf'.*expected int"):
        apply_overrides(DenoiseConfig(), ["encode.crf=fast"])


def test_exponent_without_a_dot_is_a_float(tmp_path: Path):
    # YAML 1.1 (PyYAML) reads "1e-3" as a string; a float key takes it as the number it means.
    from streamden.train.config import TrainConfig

    config = tmp_path / "train.yaml"
    config.write_text("optim:\n  lr: 1e-3\n  lr_min: 5E-6\n")
    loaded = load_config(TrainConfig, config)
    assert (loaded.optim.lr, loaded.optim.lr_min) == (0.001, 5e-6)
    with pytest.raises(ConfigError, match="'optim.lr'.*expected float"):
        load_config(TrainConfig, None, ["optim.lr=fast"])


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match="not key=value"):
        apply_overrides(DenoiseConfig(), ["encode.crf"])


def test_unknown_key_in_a_yaml_file_names_file_and_key(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("encode:\n  crf: 20\n  presett: slow\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'encode\.presett'"):
        load_config(DenoiseConfig, bad)


def test_broken_yaml_and_missing_file_name_the_file(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("encode: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(DenoiseConfig, broken)
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config(DenoiseConfig, tmp_path / "missing.yaml")


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="restoration"):
        preset_path("no-such-preset")


def test_keyword_shortcuts_override_the_preset():
    config = make_config("surveillance", sigma=12, crf=30, encoder_preset="ultrafast")
    assert (config.noise.sigma, config.encode.crf, config.encode.preset) == ("12", 30, "ultrafast")
    with pytest.raises(ConfigError, match="unknown option 'colour'.*sigma"):
        make_config(colour="red")


@pytest.mark.parametrize("override, key", [
    ("model.tile=-1", "model.tile"),
    ("model.tile_overlap=-8", "model.tile_overlap"),
    ("noise.smoothing=1.5", "noise.smoothing"),
    ("encode.crf=-5", "encode.crf"),
    ("graph.queue_size=0", "graph.queue_size"),
    ("job.segment_frames=0", "job.segment_frames"),
])
def test_out_of_range_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=f"^{key} must"):
        apply_overrides(DenoiseConfig(), [override])


def test_auto_model_runs_when_the_noise_is_estimated_and_no_model_was_named(tmp_path):
    from streamden.config import make_config

    auto = ["noise.auto_model=lite"]
    assert make_config(overrides=auto).model.name == "lite"                            # sigma auto
    assert make_config(overrides=auto, sigma=25).model.name == "fastdvdnet-aligned"    # a known sigma
    assert make_config(overrides=auto, model="fastdvdnet-gaussian").model.name == "fastdvdnet-gaussian"
    assert make_config(overrides=auto + ["model.name=fastdvdnet-gaussian"]).model.name == "fastdvdnet-gaussian"
    config_file = tmp_path / "mine.yaml"
    config_file.write_text("model:\n  name: fastdvdnet-gaussian\nnoise:\n  auto_model: lite\n")
    assert make_config(None, config_file).model.name == "fastdvdnet-gaussian"        # named in the file
    for off in ("none", "null", "None"):                                               # turned off
        assert make_config(overrides=[f"noise.auto_model={off}"]).model.name == "fastdvdnet-aligned"
