// The report's bar charts with uPlot (canvas; a maintained library built for speed: ~50 kB,
// its first chart a few tens of milliseconds on a throttled phone where Chart.js took
// 0.5-0.65 s). Three kinds, each built from plain data: the week (vertical bars and the
// budget as a line), the top apps (horizontal bars) and a day's hours (vertical bars, 0-60).
// The x axes are ordinal (0..n-1 with the labels as the axis's values); labels that do not
// fit their band are slanted at 45° or thinned, app names cut with "…". CSP-clean: uPlot and
// this module style through the CSSOM only (`el.style.x = …`), never a `style` attribute.
// `el.chart` is the uPlot instance (its `data` for tests), `el.chartLayout` how the labels
// were fitted (`shown`: the labels drawn, null where thinned).
import uPlot from "uplot";

// the app's fonts (style.css: body), at the chart's size
const FAMILY = `system-ui, -apple-system, "PingFang SC", "Noto Sans CJK SC", "Noto Sans", "Microsoft YaHei", sans-serif`;
export const FONT_PX = 12;
const FONT = `${FONT_PX}px ${FAMILY}`;
const LABEL_FONT = `600 ${FONT_PX}px ${FAMILY}`;
const TEXT = "#333";
const GRID = "#e3e7ec";
const AXIS = "#8a939c";
const GAP = 4; // px between two labels
const SIN45 = Math.SQRT1_2;
// whole minutes: tick steps uPlot may pick from
const INCRS = [1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 300, 600, 1200, 1800, 3600];

let measurer = null;
/** The width of `text` in the charts' font, measured by a canvas (what uPlot draws with). */
export function textWidth(text) {
  measurer ??= document.createElement("canvas").getContext("2d");
  measurer.font = FONT;
  return measurer.measureText(String(text)).width;
}

/**
 * How x labels `widest` px wide fit bands `band` px wide: on one line (rotate 0, step 1),
 * slanted at 45° (neighbours are then band × sin 45° apart, which must hold a line), else
 * every `step`-th label on one line. `height`: the px the labels take below the axis.
 */
export function fitLabels(widest, band, px = FONT_PX) {
  if (!(band > 0) || widest + GAP <= band) return { rotate: 0, step: 1, height: px + GAP };
  if (band * SIN45 >= px + GAP) return { rotate: 45, step: 1, height: Math.ceil((widest + px) * SIN45) + GAP };
  return { rotate: 0, step: Math.max(1, Math.ceil((widest + GAP) / band)), height: px + GAP };
}

/** `labels` with every `step`-th kept and the others null (uPlot draws no text for null). */
export function thin(labels, step) {
  return labels.map((l, i) => (i % step ? null : l));
}

/** `text` cut to at most `width` px (measured by `measure`), ending in "…" when cut. */
export function truncate(text, width, measure = textWidth) {
  const s = String(text);
  if (measure(s) <= width) return s;
  const chars = [...s];
  let n = chars.length;
  while (n > 0 && measure(chars.slice(0, n).join("") + "…") > width) n--;
  return chars.slice(0, n).join("") + "…";
}

/** The axis top for bars up to `max`: a little headroom, 1 for an empty chart. */
export function axisTop(max) {
  return max > 0 ? Math.ceil((max * 11) / 10) : 1;
}

/** The plain data as uPlot's aligned columns: x = 0..n-1, then each series (null = no point). */
export function columns(n, ...series) {
  return [Array.from({ length: n }, (_, i) => i), ...series.map((s) => s.map((v) => (v === undefined ? null : v)))];
}

// the plot's width in CSS px while uPlot sizes its axes (its first guess: the chart's width)
const plotWidth = (u) => (u.bbox?.width || 0) / uPlot.pxRatio || u.width || 0;

/** The x axis of ordinal `labels` under vertical bars: slanted or thinned to fit (see fitLabels). */
function ordinalXAxis(labels, record) {
  const widest = Math.max(0, ...labels.map(textWidth));
  const fit = (u) => {
    const layout = { ...fitLabels(widest, plotWidth(u) / Math.max(1, labels.length)), widest: Math.ceil(widest) };
    record(layout);
    return layout;
  };
  return {
    scale: "x", side: 2, font: FONT, stroke: TEXT, gap: 3,
    grid: { show: false }, ticks: { show: true, stroke: AXIS, width: 1, size: 4 },
    splits: () => labels.map((_, i) => i),
    values: (u, splits) => { const shown = thin(splits.map((i) => labels[i]), fit(u).step); record({ shown }); return shown; },
    rotate: (u) => fit(u).rotate,
    size: (u) => fit(u).height + 8,
  };
}

/** The minutes axis: whole-minute ticks formatted by `tick`, titled `title`. */
function minutesAxis(title, tick, side) {
  return {
    scale: "y", side, font: FONT, labelFont: LABEL_FONT, label: title, labelSize: FONT_PX + 6, labelGap: 0,
    stroke: TEXT, gap: 4, incrs: INCRS, space: side === 3 ? 28 : 60,
    grid: { stroke: GRID, width: 1 }, ticks: { show: false },
    values: (u, splits) => splits.map((v) => tick(v)),
    size: (u, values) => (side === 3 ? Math.ceil(Math.max(0, ...(values || []).map(textWidth))) + 10 : FONT_PX + 12),
  };
}

const bars = (size) => uPlot.paths.bars({ size: [size, 48], align: 0 });
const base = (width, height) => ({
  width, height, pxAlign: 1,
  legend: { show: false }, cursor: { show: false }, select: { show: false },
});

/**
 * The week: `used` minutes per day as bars and `budget` (minutes or null) as a line with
 * points, joined across days without one (spanGaps). `names`: the two series' names.
 */
export function weekOptions({ width, height, labels, names, colors, title, tick, top, record }) {
  return {
    ...base(width, height),
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: [0, top] } },
    axes: [ordinalXAxis(labels, record), minutesAxis(title, tick, 3)],
    series: [
      {},
      { label: names[0], fill: colors[0], stroke: colors[0], width: 0, paths: bars(0.7), points: { show: false } },
      { label: names[1], stroke: colors[1], width: 2, spanGaps: true, points: { show: true, size: 7, width: 0, fill: colors[1] } },
    ],
  };
}

/** A day's hours: 24 bars of minutes, the axis fixed at 0-60. */
export function hoursOptions({ width, height, labels, name, color, title, tick, record }) {
  return {
    ...base(width, height),
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: [0, 60] } },
    axes: [ordinalXAxis(labels, record), minutesAxis(title, tick, 3)],
    series: [{}, { label: name, fill: color, stroke: color, width: 0, paths: bars(0.8), points: { show: false } }],
  };
}

/**
 * The top apps as horizontal bars (uPlot's rotated orientation: the x scale vertical, `dir`
 * -1 so that the first app is on top), app names as the left axis's values, cut with "…"
 * to at most 40 % of the chart's width; the minutes along the bottom.
 */
export function appsOptions({ width, height, labels, name, color, title, tick, top, record }) {
  const cut = (u) => labels.map((l) => truncate(l, Math.max(40, u.width * 0.4)));
  return {
    ...base(width, height),
    scales: { x: { time: false, ori: 1, dir: -1, range: [-0.5, labels.length - 0.5] }, y: { ori: 0, dir: 1, range: [0, top] } },
    axes: [
      { scale: "x", side: 3, font: FONT, stroke: TEXT, gap: 4, grid: { show: false }, ticks: { show: false },
        splits: () => labels.map((_, i) => i),
        values: (u, splits) => { const shown = cut(u); record({ shown }); return splits.map((i) => shown[i]); },
        size: (u) => Math.ceil(Math.max(0, ...cut(u).map(textWidth))) + 10 },
      { ...minutesAxis(title, tick, 2), size: FONT_PX + 10, labelSize: FONT_PX + 8, space: 40 },
    ],
    series: [{}, { label: name, fill: color, stroke: color, width: 0, paths: bars(0.7), points: { show: false } }],
  };
}

/**
 * A throwaway chart drawn on a detached element: the first uPlot of a page pays for compiling
 * its code (~0.1-0.3 s at 4x CPU throttling); done while the report's requests are out, the
 * week's chart does not.
 */
export function warmUp() {
  const opts = weekOptions({ width: 120, height: 80, labels: ["a", "b"], names: ["a", "b"], colors: [TEXT, TEXT], title: "", tick: String, top: 1, record: () => {} });
  new uPlot(opts, columns(2, [1, 0], [1, null]), (plot, init) => plot.batch(init)).destroy();
}

/**
 * A chart: `el` (a div with `attrs`, e.g. role="img" and aria-label) to put in a sized
 * container (`.chart`); `draw(build, data, legend?)` makes the uPlot at the element's size
 * (`build({ width, height, record })` returns its options) or, once made, gives it new data
 * (`setData`: the hourly chart when another day is picked);
 * `legend`: [{ name, color, line? }] drawn above the plot. A ResizeObserver keeps the plot
 * at the element's size; `destroy()` ends both.
 */
export function chart(attrs = {}) {
  const el = document.createElement("div");
  el.className = "plot";
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  let u = null;
  let watch = null;
  let legendEl = null;
  const size = () => ({ width: Math.max(100, Math.floor(el.clientWidth)), height: Math.max(80, Math.floor(el.clientHeight - (legendEl?.offsetHeight || 0))) });
  const record = (layout) => { el.chartLayout = { ...el.chartLayout, ...layout }; };
  return {
    el,
    draw(build, data, legend = null) {
      if (u) { u.batch(() => u.setData(data)); return; }
      if (legend && !legendEl) {
        legendEl = document.createElement("div");
        legendEl.className = "chart-legend";
        for (const s of legend) {
          const item = document.createElement("span");
          const mark = document.createElement("span");
          mark.className = s.line ? "mark line" : "mark";
          mark.style.background = s.color; // the CSSOM, which the CSP allows
          item.append(mark, s.name);
          legendEl.append(item);
        }
        el.append(legendEl);
      }
      // drawn now, not in uPlot's next microtask: the performance marks follow the draw
      u = new uPlot(build({ ...size(), record }), data, (plot, init) => { el.append(plot.root); plot.batch(init); });
      el.chart = u;
      if (!watch && typeof ResizeObserver === "function") {
        watch = new ResizeObserver(() => {
          const s = size();
          if (u && (s.width !== u.width || s.height !== u.height)) u.setSize(s);
        });
        watch.observe(el);
      }
    },
    destroy() { watch?.disconnect(); u?.destroy(); u = null; },
  };
}
