import pytest

from sora.config import ConfigError, dotted_to_nested, load_params


def test_defaults_and_repo_params_file_are_valid():
    params = load_params("params.yaml")
    assert params.preprocess.test_fraction == 0.2
    assert params.register_.model_name == "sora"


def test_repo_params_file_spells_out_the_schema_defaults():
    # One set of defaults: a key left out of params.yaml (or a test without params.yaml) means what the file says.
    assert load_params("params.yaml") == load_params("no-such-params.yaml")


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("finetune:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'finetune.lrr'"):
        load_params(path)


def test_wrong_type_names_key_and_expectation(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("trainer:\n  batch_size: lots\n")
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert "'trainer.batch_size'" in str(err.value) and "integer" in str(err.value)


def test_unknown_stage_block_and_bad_choice(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("harden:\n  method: magic\nfinetuning: {}\n")
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert "'harden.method'" in str(err.value) and "unknown key 'finetuning'" in str(err.value)


def test_overrides_merge_and_validate(tmp_path):
    params = load_params(tmp_path / "missing.yaml", overrides=dotted_to_nested({"finetune.lr": 0.5}))
    assert params.finetune.lr == 0.5 and params.finetune.max_epochs == 2
    with pytest.raises(ConfigError, match="min_chars must be <= max_chars"):
        load_params(tmp_path / "missing.yaml", overrides={"preprocess": {"min_chars": 10, "max_chars": 5}})


def test_invalid_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)
