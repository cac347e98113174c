"""The ladder's rung with reason codes: the one-process worker with STREAMSCORE_REASONS=3, on the demo
model (its card has an attribution), its events scored by that model."""

from __future__ import annotations

from bench import ladder
from bench.harness import ROOT
from bench.ladder import RUNGS, WORKER, chosen, prepared
from bench.load import demo_events
from stream.scoring.model import load_folder, resolve


def test_the_rung_is_the_one_process_worker_with_three_reasons_in_full_runs_only():
    (rung,) = chosen(False, ["streamscore-reasons"])
    plain = next(r for r in RUNGS if r.key == "streamscore")
    assert rung.command == WORKER == plain.command and rung.processes == plain.processes == 1
    assert rung.settings == (("STREAMSCORE_REASONS", "3"),)
    assert rung not in chosen(True) and rung in chosen(False)
    assert chosen(False, ["streamscore,streamscore-reasons"]) == [plain, rung], "entries joined by commas"


def test_the_rung_serves_a_demo_model_that_can_be_explained(tmp_path, monkeypatch):
    monkeypatch.setattr(ladder, "POOL", 50)
    (rung,) = chosen(False, ["streamscore-reasons"])
    served, pool = prepared(rung, tmp_path, {})
    settings = dict(served.settings)
    assert settings["STREAMSCORE_REASONS"] == "3"
    model = load_folder(resolve(ROOT / "models", "loan-approval"))
    assert "STREAMSCORE_MODEL_DIR" not in settings, "the shipped demo, as the streamscore rung serves it"
    assert model.card.attribution is not None, "the shipped demo can be explained"
    sample = demo_events(50, 5)
    columns = {name: [features[name] for *_, features in sample] for name in model.feature_names}
    expected = dict(
        zip([e for _, _, e, _ in sample], model.predict_columns(columns).scores.tolist(), strict=True)
    )
    assert len(pool.scores) == 50 and {e: pool.scores[e] for e in expected} == expected
