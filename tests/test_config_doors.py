"""No accepted-but-ignored keys (issue 18): every config key given to a front door is read by
it, or that front door refuses it with one message naming the key.

The walk covers every leaf key of the config tree for every front door; the second half shows
that the keys live and the frame API used to accept and ignore now reach the engine.
"""
from __future__ import annotations

import json

import pytest

from streamden.config import FRONT_DOOR_KEYS, DenoiseConfig, config_keys, make_config, to_dict
from streamden.engine import Engine
from streamden.errors import ConfigError

DEFAULTS = to_dict(DenoiseConfig())
ALL_KEYS = config_keys(DEFAULTS)


def _value(key: str) -> str:
    node = DEFAULTS
    for part in key.split("."):
        node = node[part]
    return json.dumps(node)   # JSON is YAML: the override parses back to the same value


def _reads(door: str, key: str) -> bool:
    return any(key == r or key.startswith(r + ".") for r in FRONT_DOOR_KEYS[door])


@pytest.mark.parametrize("door", sorted(FRONT_DOOR_KEYS))
def test_every_key_is_read_or_refused_by_every_front_door(door):
    read, refused = [], []
    for key in ALL_KEYS:
        override = f"{key}={_value(key)}"
        if _reads(door, key):
            make_config(None, None, [override], door=door)
            read.append(key)
        else:
            with pytest.raises(ConfigError, match=rf"^{key}: streamden {door} does not use this key"):
                make_config(None, None, [override], door=door)
            refused.append(key)
    assert read and len(read) + len(refused) == len(ALL_KEYS)


def test_a_users_config_file_is_checked_too(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  tile: 256\njob:\n  segment_frames: 10\n")
    assert make_config(None, path).job.segment_frames == 10
    with pytest.raises(ConfigError, match="^job.segment_frames: streamden live does not use"):
        make_config(None, path, door="live")


def test_shortcuts_are_checked():
    with pytest.raises(ConfigError, match="^encode.codec: streamden frames does not use"):
        make_config(None, codec="ffv1", door="frames")


def test_keys_live_and_the_frame_api_used_to_ignore_reach_the_engine():
    live = Engine(make_config("surveillance", None, ["align.mode=flow", "model.tile=64"], door="live",
                              device="cpu"), live=True)
    assert live.aligns and live.tiles_used == 64 and live.options.batch == 1
    frames = Engine(make_config(None, None, ["align.mode=none", "model.tile=128"], door="frames", device="cpu"))
    assert not frames.aligns and frames.tiles_used == 128
