"""``make dashboard``'s drawing: the estimate panel's band, hidden edges, realised points, reference."""

from __future__ import annotations

import json

from bench import dashboard

PANELS = json.loads(dashboard.DASHBOARD.read_text())["panels"]
(ESTIMATES,) = [p for p in PANELS if p["title"] == "Estimated vs realised performance"]


def _result(metric: str, values: list[float], t0: float = 100.0) -> dict:
    return {"metric": {"metric": metric}, "values": [[t0 + 2 * i, str(v)] for i, v in enumerate(values)]}


def _series() -> list:
    """What Prometheus answers for each of the panel's targets, in their order."""
    figures = {
        "estimated": (0.90, 0.80), "lower": (0.87, 0.76), "upper": (0.93, 0.84),
        "reference": (0.91, 0.81), "realised": (0.89, 0.79),
    }  # fmt: skip
    series = []
    for target in ESTIMATES["targets"]:
        kind = target["legendFormat"].split()[0]
        accuracy, f1 = figures[kind]
        series.append(
            (target["legendFormat"], [_result("accuracy", [accuracy] * 5), _result("f1", [f1] * 5)])
        )
    return series


def test_the_estimate_panel_is_drawn_with_its_band_and_the_realised_points():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    dashboard._draw(ax, _series(), dashboard._styles(ESTIMATES), start=100.0)
    labels = {line.get_label(): line for line in ax.lines}
    assert set(labels) == {
        f"{k} {m}" for k in ("estimated", "reference", "realised") for m in ("accuracy", "f1")
    }
    assert (
        labels["realised accuracy"].get_marker() == "o"
        and labels["realised accuracy"].get_linestyle() == "None"
    )
    assert labels["reference f1"].get_linestyle() == "--"
    accuracy_band, f1_band = sorted(ax.collections, key=lambda c: c.get_label())
    assert (accuracy_band.get_label(), f1_band.get_label()) == ("95% accuracy", "95% f1")
    ys = accuracy_band.get_paths()[0].vertices[:, 1]
    assert min(ys) == 0.87 and max(ys) == 0.93, "from the lower edge to the upper one"
    plt.close(fig)


def test_every_panel_is_plotted_into_the_picture(tmp_path):
    data = [[(t["legendFormat"], []) for t in p["targets"]] for p in PANELS]
    data[PANELS.index(ESTIMATES)] = _series()
    out = tmp_path / "dashboard.png"
    dashboard.plot(PANELS, data, 100.0, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
