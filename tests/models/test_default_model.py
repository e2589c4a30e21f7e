"""One default model for every front door (issue 16), unless a front door has a measured reason
not to: live (the surveillance preset) runs no flow, and there the unaligned variant trained
with the same recipe is better (``streamden models`` says so)."""
from streamden.cli import FRONT_DOOR_MODELS
from streamden.config import ModelConfig, NoiseConfig, make_config, preset_names
from streamden.models.registry import DEFAULT_MODEL, get_card, list_models

EXCEPTIONS = {"surveillance": "fastdvdnet-gaussian"}
#: With ``--sigma auto`` (real footage) the realistic fine-tune runs (issue 19), except where a
#: front door keeps its own network: live (no flow) and the burst (its own noise fit).
AUTO_MODEL = "fastdvdnet-real"
AUTO_EXCEPTIONS = {"surveillance": None, "night_burst": None}


def test_every_preset_and_the_config_default_use_the_registry_default():
    assert ModelConfig().name == DEFAULT_MODEL
    assert {name: make_config(name, sigma=20).model.name for name in preset_names()} == \
        {name: EXCEPTIONS.get(name, DEFAULT_MODEL) for name in preset_names()}


def test_sigma_auto_runs_the_realistic_model_unless_a_front_door_keeps_its_own():
    assert NoiseConfig().auto_model == AUTO_MODEL and get_card(AUTO_MODEL).is_trained
    assert make_config(None).model.name == AUTO_MODEL
    expected = {name: AUTO_EXCEPTIONS.get(name, AUTO_MODEL) for name in preset_names()}
    assert {name: make_config(name).noise.auto_model for name in preset_names()} == expected
    assert {name: make_config(name).model.name for name in preset_names()} == \
        {name: expected[name] or EXCEPTIONS.get(name, DEFAULT_MODEL) for name in preset_names()}


def test_each_exception_is_explained_by_streamden_models():
    explained = {preset: how for preset, how in FRONT_DOOR_MODELS.values()}
    for preset in EXCEPTIONS:
        assert "better" in explained[preset]   # a measured reason, not just a name


def test_the_default_is_listed_first_and_ships_its_weights():
    assert list_models()[0].name == DEFAULT_MODEL
    assert get_card(None).name == DEFAULT_MODEL and get_card(None).is_trained
