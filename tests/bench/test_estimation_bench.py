"""The demo's drifts as the estimate sees them: the age shift at once, the concept change never."""

from __future__ import annotations

from bench import estimation


def test_the_estimate_falls_on_the_age_shift_and_not_on_the_others():
    found = estimation.run(quick=True)
    assert "error" not in found, found
    age, feature, concept = found["age"], found["feature"], found["concept"]
    # the model is least sure at those ages: the estimate and the realised accuracy fall together,
    # and the estimate crosses the alert margin within the first window after the change
    assert age["windows_to_alarm"] == 1, age
    assert abs(age["estimated_after"] - age["realised_after"]) < 0.03, age
    # inputs shift where the model is still right: no alarm, and none is due
    assert feature["windows_to_alarm"] is None and feature["realised_after"] > 0.9, feature
    # a change of concept moves no score: the estimate stays while the realised accuracy halves
    assert concept["windows_to_alarm"] is None, concept
    assert concept["realised_after"] < 0.7 < concept["estimated_after"], concept
    for drift in (age, feature, concept):
        assert abs(drift["estimated_before"] - drift["realised_before"]) < 0.02, drift
