"""The report's uPlot glue (dashboard/web/src/charts.js) in Chromium, on the self-test page
(window.mmSelftest.charts): how x labels are fitted (one line, slanted, thinned), names cut
with "…", the axis top, the data as uPlot's columns, and a real week chart read back from its
canvas: bar heights proportional to the minutes, the budget's line drawn across a day without
a budget (spanGaps). The expected figures are worked out here by hand, not read from the module."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page


def _js(page: Page, script: str, arg: Any = None) -> Any:
    return page.evaluate(f"(arg) => {{ const ch = mmSelftest.charts; {script} }}", arg)


@pytest.mark.parametrize(("widest", "band", "rotate", "step"), [
    (59, 100, 0, 1),     # a desktop's week: one line
    (59, 40, 45, 1),     # a phone's week: 40 × sin 45° = 28 px between slanted labels, a 12 px line + 4 fits
    (14.4, 12, 0, 2),    # a phone's hours ("00"): too narrow to slant (8.5 px), every second one
    (14.4, 6, 0, 4),
    (59, 0, 0, 1),       # no plot yet (uPlot's first sizing pass): one line, not a division by zero
])
def test_labels_fit_on_one_line_slanted_or_thinned(selftest: Page, widest: float, band: float, rotate: int, step: int) -> None:
    got = _js(selftest, "return ch.fitLabels(arg[0], arg[1]);", [widest, band])
    assert (got["rotate"], got["step"]) == (rotate, step)


def test_thinning_keeps_every_nth_label(selftest: Page) -> None:
    assert _js(selftest, 'return ch.thin(["a", "b", "c", "d", "e"], 2);') == ["a", None, "c", None, "e"]


def test_long_names_are_cut_with_an_ellipsis(selftest: Page) -> None:
    got = _js(selftest, """
      const long = "org.example.AVeryLongGameNameThatNeverEnds", cjk = "非常非常长的应用名称一二三四五六七八";
      const a = ch.truncate(long, 100), b = ch.truncate(cjk, 100);
      return { short: ch.truncate("Game", 100), a, aw: ch.textWidth(a), b, bw: ch.textWidth(b), cjkW: ch.textWidth(cjk) };""")
    assert got["short"] == "Game"
    assert got["a"].endswith("…") and "org.example.AVeryLongGameNameThatNeverEnds".startswith(got["a"][:-1])
    assert got["b"].endswith("…") and "非常非常长的应用名称一二三四五六七八".startswith(got["b"][:-1])
    assert 80 < got["aw"] <= 100 and 80 < got["bw"] <= 100 and got["cjkW"] > 200


def test_axis_top_and_columns(selftest: Page) -> None:
    assert _js(selftest, "return [ch.axisTop(0), ch.axisTop(7), ch.axisTop(100), ch.axisTop(572)];") == [1, 8, 110, 630]
    assert _js(selftest, "return ch.columns(3, [1, 2, 3], [4, undefined, null]);") == [[0, 1, 2], [1, 2, 3], [4, None, None]]


WEEK = """
  const box = document.createElement("div");
  box.style.width = "400px"; box.style.height = "240px";  // the CSSOM, which the CSP allows
  document.body.append(box);
  const c = ch.chart({ role: "img", "aria-label": "test chart" });
  c.el.style.width = "100%"; c.el.style.height = "100%";
  box.append(c.el);
  c.draw((size) => ch.weekOptions({ ...size, labels: ["a", "b", "c", "d", "e"], names: ["used", "budget"], colors: ["#1f5fa8", "#b3261e"],
    title: "Minutes", tick: String, top: 50 }), ch.columns(5, [10, 20, 0, 40, 5], [45, null, null, 45, 50]));
  const u = c.el.chart, r = u.ctx.canvas.width / u.width, px = u.ctx.getImageData(0, 0, u.ctx.canvas.width, u.ctx.canvas.height);
  const at = (x, y) => { const i = (y * px.width + x) * 4; return "#" + [0, 1, 2].map((k) => px.data[i + k].toString(16).padStart(2, "0")).join(""); };
  const column = (x, color) => { let n = 0; for (let y = 0; y < px.height; y++) if (at(x, y) === color) n++; return n / r; };
  const mid = (i) => Math.round(u.valToPos(i, "x", true));
  const out = { data: u.data, size: [u.width, u.height], used: [0, 1, 2, 3, 4].map((i) => column(mid(i) + Math.round(12 * r), "#1f5fa8")),
    budgetBetween: column(Math.round((mid(1) + mid(2)) / 2), "#b3261e") };
  c.destroy(); box.remove();
  return out;
"""


def test_a_week_chart_draws_bars_to_scale_and_the_budget_across_a_day_without_one(selftest: Page) -> None:
    got = _js(selftest, WEEK)
    assert got["data"] == [[0, 1, 2, 3, 4], [10, 20, 0, 40, 5], [45, None, None, 45, 50]]
    assert got["size"] == [400, 240]
    used = got["used"]
    assert used[2] == 0 and used[0] > 10
    for h, v in zip(used, [10, 20, 0, 40, 5], strict=True):
        # canvas pixels of the bar colour in a column beside the budget's points (above every bar), in CSS px
        assert h == pytest.approx(used[0] * v / 10, abs=1.5)
    # no budget on b and c: the line still joins a to d, so between b and c its colour is drawn
    assert got["budgetBetween"] > 0
