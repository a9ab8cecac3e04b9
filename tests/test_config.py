from pathlib import Path

import pytest
import yaml

from sora.config import ConfigError, dotted_to_nested, load_params, parse_params

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def test_defaults_and_repo_params_file_are_valid():
    params = load_params(REPO_PARAMS)
    assert params.preprocess.test_fraction == 0.2
    assert params.register_.model_name == "sora"


def test_params_yaml_is_the_only_source_of_defaults(tmp_path):
    # No second set of defaults in code: a key missing from the file is an error naming it.
    data = yaml.safe_load(REPO_PARAMS.read_text())
    del data["finetune"]["lr"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"missing key 'finetune.lr'"):
        load_params(path)
    with pytest.raises(ConfigError, match="no such params file"):
        load_params(tmp_path / "missing.yaml")


def test_cross_field_rules_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"'model': d_model \(128\) must be divisible by n_heads \(3\)"):
        load_params(REPO_PARAMS, overrides={"model": {"n_heads": 3}})


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
    params = load_params(REPO_PARAMS, overrides=dotted_to_nested({"finetune.lr": 0.5}))
    assert params.finetune.lr == 0.5 and params.finetune.max_epochs == load_params(REPO_PARAMS).finetune.max_epochs
    with pytest.raises(ConfigError, match="min_chars must be <= max_chars"):
        load_params(REPO_PARAMS, overrides={"preprocess": {"min_chars": 10, "max_chars": 5}})


def test_invalid_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)


@pytest.mark.parametrize(
    "path", ["/tmp/reviews.csv", "elsewhere/reviews.csv", "data/user/../reviews.csv", "data/raw/x.csv"]
)
def test_user_files_outside_the_tracked_folder_are_refused(path):
    """Files outside data/user were read but not tracked: editing one left `dvc status` clean."""
    with pytest.raises(ConfigError, match=r"outside data/user/, which is what DVC tracks"):
        load_params(REPO_PARAMS, overrides={"ingest": {"user_files": [path]}})
    with pytest.raises(ConfigError, match=r"outside data/user/"):
        load_params(REPO_PARAMS, overrides={"ingest": {"unlabeled_globs": [path]}})
    assert load_params(REPO_PARAMS, overrides={"ingest": {"user_files": ["data/user/a/b.csv"]}})


def test_the_user_data_folder_is_what_ingest_tracks():
    from sora.config import USER_DATA_DIR
    from sora.pipeline.spec import pipeline_stages

    assert USER_DATA_DIR in pipeline_stages(REPO_PARAMS.parent / "dvc.yaml")["ingest"].deps


def test_class_names_must_match_the_labels_and_be_distinct():
    from sora.config import ConfigError, load_params

    p = load_params().primary
    assert p.name == "sentiment" and p.names_for(2) == ["negative", "positive"]
    with pytest.raises(ConfigError, match="'tasks.sentiment.classes' has 2 names .* but the labels have 3 classes"):
        p.names_for(3)
    with pytest.raises(ConfigError, match="classes must be distinct"):
        load_params(overrides={"tasks": {"sentiment": {"classes": ["good", "good"]}}})


def test_tasks_need_one_primary_column_distinct_columns_and_a_task_for_each_labeled_source():
    from sora.config import ConfigError, load_params

    params = load_params()
    assert params.columns[0] == "label" and set(params.columns) == {t.column for t in params.tasks.values()}
    with pytest.raises(ConfigError, match="one task must read the column 'label'"):
        load_params(overrides={"tasks": {"sentiment": {"column": "polarity"}}})
    with pytest.raises(ConfigError, match="two tasks read the same column"):
        load_params(overrides={"tasks": {"topic": {"column": "label"}}})


def test_ingest_refuses_a_labeled_source_whose_column_no_task_reads(tmp_path):
    from sora.data.ingest import ingest

    dropped_topic = yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))
    del dropped_topic["tasks"]["topic"]
    with pytest.raises(ConfigError, match="'thucnews-topic' gives labels for the column 'topic', which no task reads"):
        ingest(parse_params(dropped_topic), tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_label_column_cannot_take_a_name_the_data_or_metrics_use():
    with pytest.raises(ConfigError, match=r"\['zh'\] cannot be label columns"):
        load_params(REPO_PARAMS, overrides={"tasks": {"topic": {"column": "zh"}}})
