"""Tier configs validate; impossible or unknown settings fail with the key named."""

import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.config import ConfigError

TIERS = ("test", "small", "default", "phase2")


@pytest.mark.parametrize("tier", TIERS)
def test_tiers_validate(tier):
    c = config_lib.load_tier(tier)
    config_lib.validate(c, num_devices=1)
    config_lib.validate(c, num_devices=8)
    assert c.tier == tier


def _bad(edit, num_devices=1):
    c = config_lib.load_tier("test")
    edit(c)
    with pytest.raises(ConfigError) as e:
        config_lib.validate(c, num_devices=num_devices)
    return str(e.value)


def test_heads_must_divide_d_model():
    assert "config.brain.heads=5" in _bad(lambda c: setattr(c.brain, "heads", 5))


def test_mesh_larger_than_device_count():
    assert "config.mesh" in _bad(lambda c: c.mesh.update(data=4, fsdp=2), num_devices=4)


def test_unknown_optimizer():
    assert "config.planner_sft.optimizer='sgd'" in _bad(lambda c: setattr(c.planner_sft, "optimizer", "sgd"))


def test_missing_data_file():
    assert "config.data.goals_file" in _bad(lambda c: setattr(c.data, "goals_file", "/nonexistent.jsonl"))
    assert "/nope.jsonl" in _bad(lambda c: setattr(c.data, "talk_files", "/nope.jsonl:2"))


def test_unknown_key():
    def add(c):
        c.brain.unlock()
        c.brain.d_modle = 3
    assert "config.brain.d_modle" in _bad(add)


def test_wrong_type_and_range():
    assert "config.sft.lr" in _bad(lambda c: setattr(c.sft, "lr", -1.0))
    assert "config.policy.dropout" in _bad(lambda c: setattr(c.policy, "dropout", 1.5))
    assert "config.compute_dtype" in _bad(lambda c: setattr(c, "compute_dtype", "float16"))
    assert "config.planner.clause_steps_conf=1.5: must lie in [0, 1]" in _bad(
        lambda c: setattr(c.planner, "clause_steps_conf", 1.5))
    assert "config.planner.clause_steps_open=8: must lie in [0, 7]" in _bad(
        lambda c: setattr(c.planner, "clause_steps_open", 8))
    assert "config.planner.members=9: must lie in [1, 8]" in _bad(lambda c: setattr(c.planner, "members", 9))
    assert "config.policy.members=9: must lie in [1, 8]" in _bad(lambda c: setattr(c.policy, "members", 9))


def test_batch_must_split_over_data_parallel_devices():
    assert "config.sft.batch_size" in _bad(lambda c: setattr(c.sft, "batch_size", 6), num_devices=4)


def test_talk_files_weights():
    assert config_lib.weighted_files("a.jsonl, b.jsonl:2.5") == [("a.jsonl", 1.0), ("b.jsonl", 2.5)]
    assert config_lib.weighted_files("C:/data/x.jsonl") == [("C:/data/x.jsonl", 1.0)]
    with pytest.raises(ConfigError, match="weight"):
        config_lib.weighted_files("a.jsonl:0")


def test_boolean_keys_take_true_and_false():
    for value in (True, False):
        c = config_lib.load_tier("test")
        c.planner.follow_intent = value
        config_lib.validate(c, num_devices=1)


def test_bool_and_int_keys_do_not_stand_in_for_each_other():
    def retype(key, value):
        def edit(c):
            with c.ignore_type():
                c.planner[key] = value
        return edit
    assert "config.planner.follow_intent=1: expected bool" in _bad(retype("follow_intent", 1))
    assert "config.planner.layers=True: expected int" in _bad(retype("layers", True))
