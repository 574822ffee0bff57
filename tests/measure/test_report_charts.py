"""The report's charts are readable at a glance: no chart wider than a screen or squashed into a
strip, no two labels drawn over each other, accuracy on an axis where a drop looks its size."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_deploy.reporting import charts


def _boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("layers", [12, 177, 600])
def test_the_per_layer_chart_stays_screen_sized_and_its_layer_names_never_overlap(layers):
    import matplotlib

    matplotlib.use("Agg")
    order = [f"conv{i}_block{i % 7}_a_very_long_layer_name_{i}" for i in range(layers)]
    rng = np.random.default_rng(0)
    series = {b: {n: float(rng.uniform(5, 40)) for n in order} for b in ("tflite/int8", "onnx/int8")}
    fig = charts.layer_figure(order, series, "SQNR (dB)", "title", 20.0)
    fig.tight_layout()
    fig.canvas.draw()
    w, h = fig.get_size_inches()
    assert w <= charts.MAX_WIDTH_IN and h >= 4 and w / h <= 4
    ax = fig.axes[0]
    ax_box = ax.get_window_extent()
    assert ax_box.height >= 0.4 * h * fig.dpi  # the plot keeps height: names do not eat it
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
    assert 1 <= len(boxes) <= charts.MAX_TICKS
    for a, b in zip(boxes, boxes[1:]):  # upright names: their boxes are the text itself
        assert not _boxes_overlap(a, b), (a, b)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_the_accuracy_chart_names_points_in_a_legend_and_spans_at_least_ten_points(tmp_path):
    from PIL import Image

    parity = {"results": [{"metrics": {"accuracy": 0.9}}]}
    points = [(2.0, 90.1, "tflite/int8"), (2.05, 90.2, "onnx/int8"), (2.1, 90.15, "openvino/int8")]
    name, _ = charts._accuracy_chart(parity, points, tmp_path)  # points almost on top of each other
    w, h = Image.open(tmp_path / name).size
    assert h >= 400 and w / h <= 4


def test_an_untrained_models_report_has_no_accuracy_chart(tmp_path):
    parity = {"reference": {"trained": False}, "results": [{"name": "tflite/int8", "metrics": {"accuracy": 0.1}}]}
    bench = {
        "model": "m",
        "batch": 1,
        "rows": [{"backend": "tflite", "precision": "int8", "threads": 1, "p50": 1.0, "p90": 1.1}],
    }
    made = [n for n, _ in charts.plots({"parity": parity, "bench": bench}, tmp_path)]
    assert "latency.png" in made and "accuracy_vs_latency.png" not in made
