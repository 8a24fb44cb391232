// Charts drawn by hand in SVG: the histogram stacked by level, and sparklines.
const SVG = "http://www.w3.org/2000/svg";
export const LEVELS = ["FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE", "UNKNOWN"];

export function svg(tag, attrs = {}, parent = null) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}

export function levelKey(level) {
  const up = (level || "UNKNOWN").toUpperCase();
  return LEVELS.includes(up) ? up : "UNKNOWN";
}

function tickFormat(ms, spanMs) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (spanMs <= 2 * 60 * 1000) return `${hm}:${pad(d.getSeconds())}`;
  if (spanMs <= 36 * 3600 * 1000) return hm;
  return `${d.getMonth() + 1}/${d.getDate()} ${hm}`;
}

// Draws the histogram into `host`; onZoom(fromMs, toMs) is called when a span is dragged over.
export function drawHistogram(host, data, onZoom, range = null) {
  host.replaceChildren();
  const width = Math.max(host.clientWidth, 200);
  const height = Math.max(host.clientHeight, 80);
  const pad = { l: 52, r: 10, t: 8, b: 18 };
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" }, host);
  const buckets = data.buckets || [];
  if (!buckets.length) {
    const note = svg("text", { class: "axis", x: width / 2, y: height / 2, "text-anchor": "middle" }, root);
    note.textContent = "No records in this time range";
    return;
  }
  const step = data.interval_ms || 60000;
  let t0 = buckets[0].start_ms;
  let t1 = buckets[buckets.length - 1].start_ms + step;
  if (range && Number.isFinite(range[0]) && Number.isFinite(range[1]) && range[1] > range[0]) {
    t0 = Math.min(t0, range[0]);
    t1 = Math.max(t1, range[1]);
  }
  const max = Math.max(1, ...buckets.map((b) => b.total));
  const w = width - pad.l - pad.r;
  const h = height - pad.t - pad.b;
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * w;
  const y = (v) => pad.t + h - (v / max) * h;
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    svg("line", { class: "grid", x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v) }, root);
    const label = svg("text", { class: "axis", x: pad.l - 6, y: y(v) + 3, "text-anchor": "end" }, root);
    label.textContent = v.toLocaleString();
  }
  const bars = svg("g", { class: "bars" }, root);
  const bw = Math.max(1, (step / (t1 - t0)) * w - 1);
  for (const b of buckets) {
    const g = svg("g", { "data-start": b.start_ms }, bars);
    const title = svg("title", {}, g);
    const parts = [];
    let acc = 0;
    const counts = {};
    for (const [lv, n] of Object.entries(b.counts || {})) counts[levelKey(lv)] = (counts[levelKey(lv)] || 0) + n;
    for (const lv of [...LEVELS].reverse()) {
      const n = counts[lv] || 0;
      if (!n) continue;
      parts.push(`${lv} ${n}`);
      svg("rect", { class: `lv-${lv}`, x: x(b.start_ms), width: bw, y: y(acc + n), height: Math.max(0.5, y(acc) - y(acc + n)) }, g);
      acc += n;
    }
    title.textContent = `${new Date(b.start_ms).toLocaleString()}: ${b.total} records${parts.length ? " (" + parts.reverse().join(", ") + ")" : ""}`;
  }
  const ticks = Math.max(2, Math.floor(w / 110));
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / ticks;
    const label = svg("text", { class: "axis", x: x(t), y: height - 4, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" }, root);
    label.textContent = tickFormat(t, t1 - t0);
  }
  // drag to zoom
  const brush = svg("rect", { class: "brush", y: pad.t, height: h, width: 0, x: 0, visibility: "hidden" }, root);
  let startX = null;
  const toLocal = (ev) => {
    const r = root.getBoundingClientRect();
    return Math.min(width - pad.r, Math.max(pad.l, ((ev.clientX - r.left) / r.width) * width));
  };
  root.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    startX = toLocal(ev);
    root.setPointerCapture(ev.pointerId);
    brush.setAttribute("x", startX);
    brush.setAttribute("width", 0);
    brush.setAttribute("visibility", "visible");
  });
  root.addEventListener("pointermove", (ev) => {
    if (startX === null) return;
    const cur = toLocal(ev);
    brush.setAttribute("x", Math.min(startX, cur));
    brush.setAttribute("width", Math.abs(cur - startX));
  });
  const finish = (ev) => {
    if (startX === null) return;
    const cur = toLocal(ev);
    const a = Math.min(startX, cur);
    const b = Math.max(startX, cur);
    startX = null;
    brush.setAttribute("visibility", "hidden");
    if (b - a < 4) return;
    const ms = (px) => t0 + ((px - pad.l) / w) * (t1 - t0);
    onZoom(Math.floor(ms(a)), Math.ceil(ms(b)));
  };
  root.addEventListener("pointerup", finish);
  root.addEventListener("pointercancel", () => { startX = null; brush.setAttribute("visibility", "hidden"); });
}

// A small line chart; `series` are arrays of numbers, drawn with the given classes.
export function sparkline(values, { width = 140, height = 28, cls = "stroke", area = true, max = null, extra = [] } = {}) {
  const root = svg("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}` });
  const all = [values, ...extra.map((e) => e.values)];
  const top = max ?? Math.max(1, ...all.flat());
  const path = (vals) => {
    const n = Math.max(1, vals.length - 1);
    return vals.map((v, i) => `${i ? "L" : "M"}${((i / n) * (width - 2) + 1).toFixed(1)},${(height - 1 - (v / top) * (height - 3)).toFixed(1)}`).join("");
  };
  if (!values.length) return root;
  if (area) svg("path", { class: "area", d: `${path(values)}L${width - 1},${height - 1}L1,${height - 1}Z` }, root);
  svg("path", { class: cls, d: path(values) }, root);
  for (const e of extra) svg("path", { class: e.cls, d: path(e.values) }, root);
  return root;
}
