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
