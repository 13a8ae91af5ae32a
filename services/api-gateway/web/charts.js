// Charts drawn as SVG from the API's numbers, each with its figures as a table beside it
// (shown on request), so that what a chart says can be read without seeing it.
import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function table(caption, headings, rows) {
  return h("details", {},
    h("summary", {}, "Show as a table"),
    h("table", { class: "data" },
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, ...headings.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, ...rows.map((row) => h("tr", {}, ...row.map((x) => h("td", {}, String(x))))))));
}

/// The drawing's width in SVG units: the page's, so that labels keep their size on a phone.
function chartWidth() {
  const main = document.getElementById("main");
  const available = main ? main.clientWidth - 48 : 640;
  return Math.max(300, Math.min(640, available));
}

function shortDate(iso) {
  const [, month, day] = iso.split("-");
  return `${Number(day)}/${Number(month)}`;
}

/// Bars of `values` over `labels` (dates), with a summary for screen readers.
export function barChart({ title, labels, values, unit, summary }) {
  const width = chartWidth(), height = 180, left = 34, bottom = 22, top = 8;
  const max = Math.max(1, ...values);
  const step = (width - left) / Math.max(1, values.length);
  const barWidth = Math.max(1, step * 0.72);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: ${summary}` });
  chart.append(svg("line", { class: "axis", x1: left, x2: width, y1: height - bottom, y2: height - bottom }));
  chart.append(svg("text", { class: "label", x: 0, y: top + 10 }, String(max)));
  chart.append(svg("text", { class: "label", x: 0, y: height - bottom }, "0"));
  const every = Math.ceil(values.length / Math.max(3, Math.floor(width / 80)));
  values.forEach((value, i) => {
    const barHeight = ((height - bottom - top) * value) / max;
    const x = left + i * step + (step - barWidth) / 2;
    const bar = svg("rect", { class: "bar-fill", x, y: height - bottom - barHeight, width: barWidth, height: barHeight, rx: Math.min(3, barWidth / 2) });
    bar.append(svg("title", {}, `${labels[i]}: ${value} ${unit}`));
    chart.append(bar);
    if (i % every === 0) {
      chart.append(svg("text", { class: "label", x: left + i * step, y: height - 6 }, shortDate(labels[i])));
    }
  });
  return h("figure", { class: "chart card" },
    h("figcaption", {}, h("h2", {}, title), h("p", { class: "muted" }, summary)),
    chart,
    table(title, ["Day", unit], labels.map((label, i) => [label, values[i]])));
}

/// A line of values from -1 to 1 (days without a value leave a gap).
export function moodChart({ title, labels, values, summary }) {
  const width = chartWidth(), height = 180, left = 34, bottom = 22, top = 10;
  const step = (width - left) / Math.max(1, values.length - 1);
  const y = (v) => top + ((1 - v) / 2) * (height - top - bottom);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: ${summary}` });
  chart.append(svg("line", { class: "zero", x1: left, x2: width, y1: y(0), y2: y(0) }));
  chart.append(svg("text", { class: "label", x: 0, y: y(1) + 4 }, "+1"));
  chart.append(svg("text", { class: "label", x: 0, y: y(0) + 4 }, "0"));
  chart.append(svg("text", { class: "label", x: 0, y: y(-1) }, "−1"));
  let path = "";
  let pen = false;
  values.forEach((value, i) => {
    const x = left + i * step;
    if (value === null || value === undefined) { pen = false; return; }
    path += `${pen ? "L" : "M"}${x.toFixed(1)},${y(value).toFixed(1)} `;
    pen = true;
    const dot = svg("circle", { class: "dot", cx: x, cy: y(value), r: 3 });
    dot.append(svg("title", {}, `${labels[i]}: ${value.toFixed(2)}`));
    chart.append(dot);
  });
  if (path) chart.append(svg("path", { class: "line", d: path }));
  const every = Math.ceil(values.length / Math.max(3, Math.floor(width / 80)));
  labels.forEach((label, i) => {
    if (i % every === 0) chart.append(svg("text", { class: "label", x: left + i * step - 8, y: height - 6 }, shortDate(label)));
  });
  return h("figure", { class: "chart card" },
    h("figcaption", {}, h("h2", {}, title), h("p", { class: "muted" }, summary)),
    chart,
    table(title, ["Day", "Mood (−1 to +1)"], labels.map((label, i) => [label, values[i] === null || values[i] === undefined ? "no entry scored" : values[i].toFixed(2)])));
}

/// A calendar of the days given (`{date, entries}`), a column per week, Monday on top.
export function heatMap({ title, days, summary, onSelect }) {
  const size = 13, gap = 3, top = 16, left = 28;
  if (!days.length) return h("p", { class: "muted" }, "No days to show yet.");
  const first = new Date(`${days[0].date}T00:00:00Z`);
  const offset = (first.getUTCDay() + 6) % 7;
  const weeks = Math.ceil((days.length + offset) / 7);
  const max = Math.max(1, ...days.map((d) => d.entries));
  const level = (n) => (n === 0 ? 0 : Math.min(4, 1 + Math.floor((3 * n) / max + 0.0001)));
  const width = left + weeks * (size + gap), height = top + 7 * (size + gap);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": `${title}: ${summary}`, class: "heat" });
  ["Mon", "Wed", "Fri"].forEach((name, i) => chart.append(svg("text", { class: "label", x: 0, y: top + (i * 2) * (size + gap) + 10 }, name)));
  let lastMonth = -1;
  days.forEach((day, i) => {
    const index = i + offset;
    const week = Math.floor(index / 7), weekday = index % 7;
    const date = new Date(`${day.date}T00:00:00Z`);
    if (weekday === 0 || i === 0) {
      const month = date.getUTCMonth();
      if (month !== lastMonth && date.getUTCDate() <= 7) {
        chart.append(svg("text", { class: "label", x: left + week * (size + gap), y: 11 }, date.toLocaleDateString(undefined, { month: "short", timeZone: "UTC" })));
        lastMonth = month;
      }
    }
    const label = `${date.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric", timeZone: "UTC" })}: ${day.entries} ${day.entries === 1 ? "entry" : "entries"}`;
    const cell = svg("rect", {
      class: `l${level(day.entries)}`, x: left + week * (size + gap), y: top + weekday * (size + gap),
      width: size, height: size, rx: 2,
    });
    cell.append(svg("title", {}, label));
    if (day.entries > 0 && onSelect) {
      const link = svg("a", { href: `#/timeline?from=${day.date}&to=${day.date}`, "aria-label": label });
      link.append(cell);
      chart.append(link);
    } else {
      chart.append(cell);
    }
  });
  const legend = h("div", { class: "legend", "aria-hidden": "true" }, "Less",
    ...[0, 1, 2, 3, 4].map((l) => {
      const swatch = svg("svg", { width: 13, height: 13, viewBox: "0 0 13 13" });
      swatch.append(svg("rect", { class: `l${l}`, width: 13, height: 13, rx: 2 }));
      return swatch;
    }), "More");
  // Wider than a phone: the calendar scrolls inside its box (from the keyboard too).
  const scroller = h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": `${title}, scrollable` }, chart);
  return h("figure", { class: "chart card heat" },
    h("figcaption", {}, h("h2", {}, title), h("p", { class: "muted" }, summary)),
    scroller, legend);
}

/// Horizontal meters of shares (0..1), labelled with their percentages.
export function shares(rows) {
  return h("div", { class: "stack" }, ...rows.map(([name, share]) => {
    const percent = Math.round((share || 0) * 100);
    const fill = h("div");
    fill.style.width = `${percent}%`;
    return h("div", {},
      h("div", { class: "row spread" }, h("span", {}, name), h("span", { class: "muted" }, `${percent}%`)),
      h("div", { class: "meter", role: "meter", "aria-label": name, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(percent) }, fill));
  }));
}
