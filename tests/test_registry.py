from sora.tracking.registry import decide


def test_first_candidate_is_promoted_when_it_clears_the_floor():
    d = decide({"test_f1": 0.8, "attack_acc": 0.7}, None, f1_tolerance=0.005, attack_floor=0.5)
    assert d.promote and "no champion yet" in d.reason


def test_gate_refuses_worse_f1_and_weak_robustness():
    champion = {"test_f1": 0.85, "attack_acc": 0.8}
    worse = decide({"test_f1": 0.80, "attack_acc": 0.8}, champion, 0.005, 0.5)
    assert not worse.promote and "0.8000 < champion's 0.8500" in worse.reason
    fragile = decide({"test_f1": 0.90, "attack_acc": 0.4}, champion, 0.005, 0.5)
    assert not fragile.promote and "below the floor" in fragile.reason


def test_gate_promotes_within_tolerance():
    champion = {"test_f1": 0.85, "attack_acc": 0.8}
    assert decide({"test_f1": 0.846, "attack_acc": 0.8}, champion, 0.005, 0.5).promote
    assert not decide({"test_f1": 0.844, "attack_acc": 0.8}, champion, 0.005, 0.5).promote


def test_constant_predictor_is_refused_without_a_champion():
    """The reported failure: with no champion, a 99 %-sparse model answering 1 for every text (0.5075 under
    attack, above the 0.5 floor) was promoted. The absolute gate refuses it with no champion to compare."""
    from sora.tracking.registry import absolute_gate

    majority = {"en": 0.52, "zh": 0.51}
    constant = {"en": 0.52, "zh": 0.49}
    refusal = absolute_gate(constant, {"en": 0.79, "zh": 0.85}, majority, 0.0, 0.05)
    assert refusal and "majority class" in refusal
    d = decide({"test_f1": 0.34, "attack_acc": 0.5075}, None, 0.0, 0.5, refusal)
    assert not d.promote and d.reason == refusal


def test_absolute_gate_needs_the_baseline_on_every_language():
    from sora.tracking.registry import absolute_gate

    baseline, majority = {"en": 0.79, "zh": 0.85}, {"en": 0.5, "zh": 0.5}
    assert absolute_gate({"en": 0.80, "zh": 0.85}, baseline, majority, 0.0, 0.05) is None
    worse_en = absolute_gate({"en": 0.78, "zh": 0.90}, baseline, majority, 0.0, 0.05)
    assert "en test accuracy 0.7800 < the TF-IDF baseline's 0.7900" in worse_en
    assert absolute_gate({"en": 0.78, "zh": 0.90}, baseline, majority, 0.02, 0.05) is None
    assert "no test accuracy for zh" in absolute_gate({"en": 0.8}, baseline, majority, 0.0, 0.05)


def test_a_champion_tolerance_that_admits_much_worse_models_is_refused():
    from pathlib import Path

    import pytest

    from sora.config import ConfigError, load_params

    repo_params = Path(__file__).resolve().parents[1] / "params.yaml"
    with pytest.raises(ConfigError, match="register.f1_tolerance"):
        load_params(repo_params, overrides={"register": {"f1_tolerance": 0.45}})


def test_every_other_task_must_beat_its_majority_class():
    from sora.tracking.registry import task_gate

    majority = {"topic": 0.1, "text_type": 0.45}
    assert task_gate({"topic": 0.8, "text_type": 0.9}, majority, 0.05) is None
    refusal = task_gate({"topic": 0.8, "text_type": 0.47}, majority, 0.05)
    assert "task text_type: test accuracy 0.4700 does not beat always answering its majority class" in refusal
    assert "task topic: no test accuracy" in task_gate({"text_type": 0.9}, majority, 0.05)
    assert task_gate({}, {}, 0.05) is None  # a model with one task
    refusal = task_gate({"text_type": 0.9}, {"topic": 1.0, "text_type": 0.45}, 0.05)
    assert "task topic: no test accuracy (no labeled test texts?)" in refusal
