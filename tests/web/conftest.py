"""tests/web: the guardian web app in Debian's Chromium (marker `web`); fixtures in
support/web_fixtures.py."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page
from support.web_fixtures import artifacts, browser, dist, make_tablet, page, selftest, web_server  # noqa: F401

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.web)


# The report's uPlot charts as drawn: each chart's series data, the count of canvas pixels of
# each opaque colour (read back with getImageData), and its category labels as drawn (text,
# centre in CSS px from the canvas's left or top, width measured in the axis's font: uPlot
# keeps fonts scaled by the pixel ratio); `labelAxis` is uPlot's own underscored field, the
# category axis's size in CSS px.
CHART_PROBE = r"""() => Object.fromEntries([...document.querySelectorAll(".plot[data-testid]")].filter((el) => el.chart).map((el) => {
  const u = el.chart, r = u.ctx.canvas.width / u.width, px = u.ctx.getImageData(0, 0, u.ctx.canvas.width, u.ctx.canvas.height).data;
  const counts = {};
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] !== 255) continue;
    const k = "#" + [px[i], px[i + 1], px[i + 2]].map((v) => v.toString(16).padStart(2, "0")).join("");
    counts[k] = (counts[k] || 0) + 1;
  }
  const m = document.createElement("canvas").getContext("2d");
  m.font = u.axes[0].font[0].replace(/[\d.]+px/, (x) => `${parseFloat(x) / r}px`);
  const vertical = u.scales.x.ori === 1;
  const at = (i) => u.valToPos(i, "x") + (vertical ? u.bbox.top : u.bbox.left) / r;
  const layout = el.chartLayout || {};
  return [el.dataset.testid, {
    data: u.data.slice(1), colors: Object.fromEntries(Object.entries(counts).filter(([, n]) => n >= 20)),
    labels: (layout.shown || []).map((text, i) => (text === null ? null : [text, at(i), m.measureText(text).width])),
    rotate: layout.rotate ?? 0, width: u.width, height: u.height, fontPx: u.axes[0].font[1] / r,
    labelAxis: u.axes[0]._size, plot: [u.bbox.left / r, u.bbox.top / r, u.bbox.width / r, u.bbox.height / r] }];
}))"""


@pytest.fixture
def read_charts() -> Callable[[Page], dict[str, Any]]:
    """The report's charts as drawn (CHART_PROBE), by test id."""
    return lambda p: p.evaluate(CHART_PROBE)
