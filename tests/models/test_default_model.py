"""One default model for every front door (issue 16): the API, the presets, live and burst."""
from streamden.config import ModelConfig, make_config, preset_names
from streamden.models.registry import DEFAULT_MODEL, get_card, list_models


def test_every_preset_and_the_config_default_use_the_registry_default():
    assert ModelConfig().name == DEFAULT_MODEL
    assert {name: make_config(name).model.name for name in preset_names()} == \
        {name: DEFAULT_MODEL for name in preset_names()}


def test_the_default_is_listed_first_and_ships_its_weights():
    assert list_models()[0].name == DEFAULT_MODEL
    assert get_card(None).name == DEFAULT_MODEL and get_card(None).is_trained
