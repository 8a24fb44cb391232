// LogLens web UI. Every piece of data reaches the page through textContent or DOM attributes:
// log lines are hostile input and are never parsed as HTML.
import { ApiError, apiKey, forgetKey, getJSON, streamEvents } from "./api.js";
import { LEVELS, drawHistogram, levelKey, sparkline, svg } from "./charts.js";
import { QueryBar } from "./querybar.js";

const $ = (id) => document.getElementById(id);
const PRESETS = { "15m": "now-15m", "1h": "now-1h", "24h": "now-24h", "7d": "now-7d" };
const PAGE = 100;
const MAX_ROWS = 2000;
const VIEWS = ["explore", "patterns", "services", "anomalies", "ask"];

const state = { view: "explore", q: "", from: "now-24h", to: "now" };
let current = null; // AbortController of the running query
let cursor = null;
let loadingMore = false;
let tail = null; // { controller, pending: [], paused }
let bar;
let lastHist = null;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function quote(value) {
  const s = String(value);
  return /^[\w.@/:+-]+$/.test(s) && !/^-/.test(s) && !/^(AND|OR|NOT)$/.test(s) ? s : `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

// ------------------------------------------------------------------------------------------- state
function readURL() {
  const p = new URLSearchParams(location.search);
  state.view = VIEWS.includes(p.get("view")) ? p.get("view") : "explore";
  state.q = p.get("q") ?? "";
  state.from = p.get("from") || "now-24h";
  state.to = p.get("to") || "now";
}

function writeURL(push) {
  const p = new URLSearchParams();
  if (state.view !== "explore") p.set("view", state.view);
  if (state.q) p.set("q", state.q);
  p.set("from", state.from);
  p.set("to", state.to);
  const next = `${location.pathname}?${p}`;
  if (next === location.pathname + location.search) return;
  if (push) history.pushState(null, "", next);
  else history.replaceState(null, "", next);
}

function syncControls() {
  bar.value = state.q;
  const preset = Object.entries(PRESETS).find(([, v]) => v === state.from && state.to === "now");
  $("range").value = preset ? preset[0] : "custom";
  $("custom").hidden = Boolean(preset);
  $("from").value = state.from;
  $("to").value = state.to;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === state.view);
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== state.view;
  $("bar").hidden = state.view === "ask";
  document.querySelector("#bar .query").hidden = state.view === "anomalies";
  $("tail").closest("label").hidden = state.view !== "explore";
}

function rangeText() {
  return state.to === "now" && state.from.startsWith("now-") ? `last ${state.from.slice(4)}` : `${state.from} → ${state.to}`;
}

function readControls() {
  state.q = bar.value.trim();
  const r = $("range").value;
  if (r === "custom") {
    state.from = $("from").value.trim() || "now-24h";
    state.to = $("to").value.trim() || "now";
  } else {
    state.from = PRESETS[r];
    state.to = "now";
  }
}

// ------------------------------------------------------------------------------------------- running
function begin() {
  if (current) current.abort();
  current = new AbortController();
  const controller = current;
  const timer = setTimeout(() => { if (current === controller) $("progress").hidden = false; }, 250);
  const started = performance.now();
  const tick = setInterval(() => {
    $("progress-text").textContent = `Searching… ${((performance.now() - started) / 1000).toFixed(1)} s`;
  }, 100);
  controller.signal.addEventListener("abort", () => { clearTimeout(timer); clearInterval(tick); });
  return {
    signal: controller.signal,
    end() {
      clearTimeout(timer);
      clearInterval(tick);
      if (current === controller) { $("progress").hidden = true; current = null; }
    },
  };
}

function cancel() {
  if (!current) return;
  current.abort();
  current = null;
  $("progress").hidden = true;
  $("summary").textContent = "Cancelled.";
}

function showFailure(err) {
  if (err.name === "AbortError") return true;
  if (err instanceof ApiError && err.status === 400 && err.body && typeof err.body.position === "number") {
    bar.showError(err.body.error, err.body.position, err.body.caret);
    return true;
  }
  if (err instanceof ApiError) {
    bar.showError(err.body.error || `The server answered ${err.status}`, null, null);
    return true;
  }
  bar.showError(`Could not reach the server: ${err.message}`, null, null);
  return true;
}

function run(push = true) {
  readControls();
  writeURL(push);
  syncControls();
  render();
}

function render() {
  if (state.view === "explore") return explore();
  stopTail();
  if (state.view === "patterns") return patterns();
  if (state.view === "services") return services();
  if (state.view === "anomalies") return anomalies();
  return undefined;
}

// ------------------------------------------------------------------------------------------- explore
async function explore() {
  const job = begin();
  const params = { q: state.q, from: state.from, to: state.to };
  bar.clearError();
  $("summary").textContent = "";
  $("empty").hidden = true;
  cursor = null;
  // the histogram and the first page load side by side; each shows as soon as it arrives
  const hist = getJSON("/api/v1/histogram", params, job.signal).then((h) => {
    if (job.signal.aborted) return;
    renderHistogram(h);
    const total = h.buckets.reduce((n, b) => n + b.total, 0);
    $("summary").textContent = `${total.toLocaleString()} record${total === 1 ? "" : "s"} · ${rangeText()}`;
  }, () => {}); // a failed query fails the search too, which says why
  try {
    const page = await getJSON("/api/v1/search", { ...params, limit: PAGE }, job.signal);
    const rows = $("results");
    rows.replaceChildren(...page.records.map((r) => row(r)));
    cursor = page.next_cursor;
    $("more").textContent = cursor ? "" : page.records.length ? "End of results." : "";
    if (!page.records.length) showEmpty();
    if (!performance.getEntriesByName("loglens:first-rows").length) performance.mark("loglens:first-rows");
    await hist;
  } catch (err) {
    if (err.name !== "AbortError") {
      $("results").replaceChildren();
      $("histogram").replaceChildren();
      $("legend").replaceChildren();
      $("more").textContent = "";
    }
    showFailure(err);
  } finally {
    job.end();
  }
  if ($("tail").checked) startTail();
}

function showEmpty() {
  const box = $("empty");
  const why = state.q
    ? `No records match “${state.q}” in the ${rangeText()}.`
    : `No records in the ${rangeText()}.`;
  const actions = el("div", { class: "actions" });
  if (state.from !== "now-7d" || state.to !== "now") {
    actions.append(el("button", { type: "button", text: "Widen to the last 7 days", onclick: () => setRange("now-7d", "now") }));
  }
  actions.append(el("button", { type: "button", text: "Search all time", onclick: () => setRange("0", "now") }));
  if (state.q) actions.append(el("button", { type: "button", text: "Clear the query", onclick: () => { bar.value = ""; run(); } }));
  box.replaceChildren(
    el("p", { text: why }),
    el("p", { class: "muted", text: "The time range may be too narrow, or the query too strict. Try widening the time range." }),
    actions,
  );
  box.hidden = false;
}

function setRange(from, to) {
  state.from = from;
  state.to = to;
  syncControls();
  $("range").value = Object.entries(PRESETS).find(([, v]) => v === from && to === "now")?.[0] ?? "custom";
  $("custom").hidden = $("range").value !== "custom";
  run();
}

function renderHistogram(h) {
  lastHist = h;
  drawHistogram($("histogram"), h, (a, b) => setRange(new Date(a).toISOString(), new Date(b).toISOString()), domain(h));
  const seen = new Set();
  for (const b of h.buckets) for (const lv of Object.keys(b.counts || {})) seen.add(levelKey(lv));
  $("legend").replaceChildren(...LEVELS.filter((lv) => seen.has(lv)).map((lv) => el("span", { class: `lv-${lv}`, text: lv })));
}

async function loadMore() {
  if (!cursor || loadingMore || current) return;
  loadingMore = true;
  $("more").textContent = "Loading…";
  try {
    const page = await getJSON("/api/v1/search", { q: state.q, from: state.from, to: state.to, limit: PAGE, cursor });
    const rows = $("results");
    for (const r of page.records) rows.appendChild(row(r));
    while (rows.childElementCount > MAX_ROWS * 5) rows.firstElementChild.remove();
    cursor = page.next_cursor;
    $("more").textContent = cursor ? "" : "End of results.";
  } catch (err) {
    $("more").textContent = "";
    showFailure(err);
  } finally {
    loadingMore = false;
  }
}

function row(record, fresh = false) {
  const lv = levelKey(record.level);
  const line = el("div", { class: "line", role: "button", tabindex: "0", title: "Show all fields" },
    el("span", { class: "time", text: fmtTime(record.timestamp) }),
    el("span", { class: "level", text: record.level || "—" }),
    el("span", { class: "svc", text: record.service || "" }),
    el("span", { class: "host", text: record.host || "" }),
    el("span", { class: "msg", text: record.message ?? record.line ?? "" }),
  );
  const node = el("div", { class: `row lv-${lv}${fresh ? " fresh" : ""}`, role: "listitem", dataset: { id: record.id } }, line);
  const toggle = () => {
    const open = node.querySelector(".details");
    if (open) open.remove();
    else node.appendChild(details(record));
  };
  line.addEventListener("click", toggle);
  line.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); toggle(); } });
  return node;
}

function fieldsOf(record) {
  const out = [
    ["timestamp", record.timestamp, null],
    ["level", record.level, "level"],
    ["service", record.service, "service"],
    ["host", record.host, "host"],
    ["trace_id", record.trace_id, "trace_id"],
    ["template", record.template_id, "template"],
    ["source", record.source, null],
    ["observed_at", record.observed_at, null],
    ["id", record.id, null],
  ];
  for (const [k, v] of Object.entries(record.attributes || {}).sort(([a], [b]) => a.localeCompare(b))) {
    out.push([k, typeof v === "object" && v !== null ? JSON.stringify(v) : v, k]);
  }
  return out.filter(([, v]) => v !== null && v !== undefined && v !== "");
}

function addTerm(term) {
  const q = bar.value.trim();
  bar.value = q && q !== "*" ? `${q} ${term}` : term;
  run();
}

function details(record) {
  const table = el("table");
  for (const [name, value, field] of fieldsOf(record)) {
    const v = el("span", { class: "v", text: String(value) });
    const acts = el("td", { class: "acts" });
    if (field) {
      const term = `${field}:${quote(value)}`;
      v.title = `Click: filter by ${term} · Alt-click or right-click: exclude`;
      v.dataset.field = field;
      v.addEventListener("click", (ev) => addTerm(ev.altKey ? `-${term}` : term));
      v.addEventListener("contextmenu", (ev) => { ev.preventDefault(); addTerm(`-${term}`); });
      acts.append(
        el("button", { type: "button", class: "ghost filter", title: `Filter by ${term}`, text: "+", onclick: () => addTerm(term) }),
        el("button", { type: "button", class: "ghost exclude", title: `Exclude ${term}`, text: "−", onclick: () => addTerm(`-${term}`) }),
      );
    }
    table.append(el("tr", {}, el("td", { class: "k", text: name }), el("td", {}, v), acts));
  }
  return el("div", { class: "details" },
    el("div", { class: "message", text: record.line || record.message || "" }),
    table,
    el("div", { class: "tools" },
      el("button", { type: "button", class: "context-button", text: "Show context", onclick: () => openContext(record) }),
      el("button", { type: "button", class: "explain-button", text: "Explain", onclick: () => openExplain(record) }),
      el("span", { class: "hint", text: "Click a value to filter by it; alt-click or right-click to exclude it." })),
  );
}

async function openContext(record) {
  const dialog = $("context");
  $("context-title").textContent = `${record.service || "?"} · ${record.host || "?"} · ${fmtTime(record.timestamp)}`;
  $("context-lines").replaceChildren(el("div", { class: "muted", text: "Loading…" }));
  if (!dialog.open) dialog.showModal();
  try {
    showContext(await getJSON(`/api/v1/records/${encodeURIComponent(record.id)}/context`, { before: 20, after: 20 }));
  } catch (err) {
    $("context-lines").replaceChildren(el("div", { class: "err-text", text: err.message }));
  }
}

function showContext(ctx) {
  const dialog = $("context");
  const r0 = ctx.record;
  $("context-title").textContent = `${r0.service || "?"} · ${r0.host || "?"} · ${fmtTime(r0.timestamp)}`;
  const line = (r, focus) => el("div", { class: `lv-${levelKey(r.level)}${focus ? " focus" : ""}`, dataset: { id: String(r.id) } },
    el("span", { class: "t", text: fmtTime(r.timestamp) }), r.line || r.message || "");
  $("context-lines").replaceChildren(...ctx.before.map((r) => line(r, false)), line(r0, true),
    ...ctx.after.map((r) => line(r, false)));
  if (!dialog.open) dialog.showModal();
  dialog.querySelector(".focus")?.scrollIntoView({ block: "center" });
}

// ------------------------------------------------------------------------------------------- tail
function atTop() {
  return window.scrollY < 40;
}

function startTail() {
  stopTail();
  const controller = new AbortController();
  tail = { controller, pending: [], scheduled: false };
  const me = tail;
  $("tail-status").textContent = "● live";
  const flush = () => {
    me.scheduled = false;
    if (tail !== me) return;
    if (!atTop()) {
      $("tail-status").textContent = `❚❚ paused: ${me.pending.length.toLocaleString()} new (scroll to the top to resume)`;
      return;
    }
    const rows = $("results");
    const batch = me.pending.splice(0, me.pending.length).slice(-MAX_ROWS);
    if (batch.length) {
      $("empty").hidden = true;
      const frag = document.createDocumentFragment();
      for (let i = batch.length - 1; i >= 0; i--) frag.appendChild(row(batch[i], true));
      rows.prepend(frag);
      while (rows.childElementCount > MAX_ROWS) rows.lastElementChild.remove();
      if (rows.childElementCount >= MAX_ROWS) { cursor = null; $("more").textContent = `Showing the newest ${MAX_ROWS.toLocaleString()}.`; }
    }
    $("tail-status").textContent = "● live";
  };
  me.flush = flush;
  streamEvents("/api/v1/tail", { q: state.q }, controller.signal, (event, data) => {
    if (event !== "record") return;
    try { me.pending.push(JSON.parse(data)); } catch { return; }
    if (me.pending.length > MAX_ROWS) me.pending.splice(0, me.pending.length - MAX_ROWS);
    if (!me.scheduled) { me.scheduled = true; requestAnimationFrame(flush); }
  }).catch((err) => {
    if (err.name === "AbortError" || tail !== me) return;
    $("tail-status").textContent = `live tail stopped: ${err.message}`;
  });
}

function stopTail() {
  if (!tail) return;
  tail.controller.abort();
  tail = null;
  $("tail-status").textContent = "";
}

// ------------------------------------------------------------------------------------------- patterns
function levelMix(levels) {
  const total = Object.values(levels || {}).reduce((a, b) => a + b, 0) || 1;
  const bar = el("div", { class: "mix", title: Object.entries(levels || {}).map(([k, v]) => `${k} ${v}`).join(", ") });
  for (const lv of LEVELS) {
    const n = Object.entries(levels || {}).filter(([k]) => levelKey(k) === lv).reduce((a, [, v]) => a + v, 0);
    if (!n) continue;
    const seg = el("span", { class: `lv-${lv}` });
    seg.style.width = `${(100 * n) / total}%`;
    bar.append(seg);
  }
  return bar;
}

function openExplore(q) {
  state.view = "explore";
  bar.value = q;
  run();
}

async function patterns() {
  const job = begin();
  $("patterns-range").textContent = rangeText();
  try {
    const data = await getJSON("/api/v1/patterns", { q: state.q, from: state.from, to: state.to, limit: 100 }, job.signal);
    const body = el("tbody");
    for (const p of data.patterns) {
      const tr = el("tr", { class: "pattern", dataset: { id: String(p.id) }, title: `Explore template:${p.id}` },
        el("td", { class: "count", text: p.count.toLocaleString() }),
        el("td", {}, sparkline(p.trend || [])),
        el("td", { class: "tpl" }, p.new ? el("span", { class: "badge", text: "new" }) : null, p.template ?? `#${p.id}`),
        el("td", {}, levelMix(p.levels), el("div", { class: "mixtext", text: Object.entries(p.levels || {}).map(([k, v]) => `${k} ${v}`).join(" · ") })),
        el("td", { class: "when" }, el("div", { text: `first ${fmtTime(p.first_seen)}` }), el("div", { text: `last ${fmtTime(p.last_seen)}` })),
      );
      tr.addEventListener("click", () => openExplore(`template:${p.id}`));
      body.append(tr);
    }
    const head = el("thead", {}, el("tr", {}, ...["Count", "Trend", "Template", "Levels", "Seen"].map((t) => el("th", { text: t }))));
    $("patterns").replaceChildren(data.patterns.length ? el("table", {}, head, body)
      : el("div", { class: "empty", text: `No patterns in the ${rangeText()}. Try widening the time range.` }));
  } catch (err) {
    if (err.name !== "AbortError") $("patterns").replaceChildren(el("div", { class: "empty err-text", text: err.message }));
    showFailure(err);
  } finally {
    job.end();
  }
}

// ------------------------------------------------------------------------------------------- services
const SLOTS = 40;
const UNIT_MS = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 };

// A time as the API reads it (now, now-1h, RFC 3339, epoch by magnitude) in ms, or NaN.
function toMs(text, now) {
  const t = String(text).trim();
  const rel = /^now(?:-(\d+)([smhdw]))?$/.exec(t);
  if (rel) return rel[1] ? now - Number(rel[1]) * UNIT_MS[rel[2]] : now;
  if (/^\d+(\.\d+)?$/.test(t)) {
    const n = Number(t);
    return n < 1e11 ? n * 1e3 : n < 1e14 ? n : n < 1e17 ? n / 1e3 : n / 1e6;
  }
  return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(t) ? t : `${t}Z`);
}

// A histogram interval giving about SLOTS buckets over the window (so no slot gets two buckets).
function slotInterval() {
  const [lo, hi] = domain({ buckets: [] });
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || hi <= lo) return "auto";
  return `${Math.max(1, Math.ceil((hi - lo) / SLOTS / 1000))}s`;
}

// The window the charts span: the range asked for, or the buckets' own span.
function domain(h) {
  const now = Date.now();
  let lo = toMs(state.from, now);
  let hi = toMs(state.to, now);
  const b = h.buckets;
  if (!Number.isFinite(lo) && b.length) lo = b[0].start_ms;
  if (!Number.isFinite(hi) && b.length) hi = b[b.length - 1].start_ms + h.interval_ms;
  return [lo, hi];
}

async function services() {
  const job = begin();
  $("services-range").textContent = rangeText();
  const params = { q: state.q, from: state.from, to: state.to };
  try {
    const top = await getJSON("/api/v1/top", { ...params, field: "service", limit: 24 }, job.signal);
    const cards = top.values.map((v) => {
      const card = el("div", { class: "svc-card", dataset: { service: String(v.value) } });
      const link = el("a", { href: "#", text: String(v.value) });
      link.addEventListener("click", (ev) => { ev.preventDefault(); openExplore(`service:${quote(v.value)}`); });
      const stat = el("span", { class: "stat", text: `${v.count.toLocaleString()} records` });
      card.append(el("h2", {}, link, stat), el("div", { class: "charts" }, el("div", { text: "loading…" })));
      return card;
    });
    $("services").replaceChildren(...(cards.length ? cards : [el("div", { class: "empty", text: `No services in the ${rangeText()}.` })]));
    await Promise.all(top.values.map(async (v, i) => {
      const sq = `service:${quote(v.value)}`;
      const q = state.q ? `(${state.q}) ${sq}` : sq;
      const [h, pats] = await Promise.all([
        getJSON("/api/v1/histogram", { ...params, q, interval: slotInterval() }, job.signal),
        getJSON("/api/v1/patterns", { ...params, q: state.q, service: v.value, limit: 3 }, job.signal),
      ]);
      const [lo, hi] = domain(h);
      const volume = new Array(SLOTS).fill(0);
      const errors = new Array(SLOTS).fill(0);
      for (const b of h.buckets) {
        const slot = Math.min(SLOTS - 1, Math.max(0, Math.floor(((b.start_ms - lo) / Math.max(1, hi - lo)) * SLOTS)));
        volume[slot] += b.total;
        errors[slot] += Object.entries(b.counts || {})
          .filter(([k]) => ["ERROR", "FATAL"].includes(levelKey(k))).reduce((a, [, n]) => a + n, 0);
      }
      const rate = volume.map((n, j) => (n ? (100 * errors[j]) / n : 0));
      const errTotal = errors.reduce((a, b) => a + b, 0);
      const card = cards[i];
      card.querySelector(".stat").textContent = `${v.count.toLocaleString()} records · ${v.count ? ((100 * errTotal) / v.count).toFixed(1) : "0"}% errors`;
      card.querySelector(".charts").replaceChildren(
        el("div", {}, el("div", { text: "volume" }), sparkline(volume, { width: 190, height: 40 })),
        el("div", {}, el("div", { text: "error rate (%)" }), sparkline(rate, { width: 190, height: 40, cls: "err", area: false, max: 100 })),
      );
      const list = el("ol");
      for (const p of pats.patterns) {
        const li = el("li", { title: p.template ?? "", text: `${p.count.toLocaleString()}× ${p.template ?? `#${p.id}`}` });
        li.addEventListener("click", () => openExplore(`template:${p.id}`));
        list.append(li);
      }
      card.append(list);
    }));
  } catch (err) {
    if (err.name !== "AbortError") $("services").replaceChildren(el("div", { class: "empty err-text", text: err.message }));
    showFailure(err);
  } finally {
    job.end();
  }
}

// ------------------------------------------------------------------------------------------- citations
const CITE = /\[(record|pattern):([A-Za-z0-9_-]+)\]/g;

// Text with [record:ID] / [pattern:ID] markers as DOM nodes: the text as text nodes, the markers as links.
function cited(text, cls = "cited") {
  const box = el("span", { class: cls });
  let last = 0;
  for (const m of String(text || "").matchAll(CITE)) {
    if (m.index > last) box.append(document.createTextNode(text.slice(last, m.index)));
    box.append(citeLink(m[1], m[2]));
    last = m.index + m[0].length;
  }
  if (last < String(text || "").length) box.append(document.createTextNode(text.slice(last)));
  return box;
}

function citeLink(kind, id) {
  const label = kind === "record" ? `record ${id}` : `pattern #${id}`;
  const href = kind === "record" ? "/?view=explore" : `/?q=${encodeURIComponent(`template:${id}`)}&from=now-7d&to=now`;
  const a = el("a", { class: `cite cite-${kind}`, href, dataset: { kind, id }, title: kind === "record" ? "Open this record in Explore, with its context" : `Explore template:${id}`, text: label });
  a.addEventListener("click", (ev) => {
    ev.preventDefault();
    if (kind === "record") openRecord(id);
    else openPattern(id);
  });
  return a;
}

function closeDialogs() {
  for (const id of ["explain", "context"]) if ($(id).open) $(id).close();
}

function openPattern(id) {
  closeDialogs();
  state.from = "now-7d";
  state.to = "now";
  syncControls();
  openExplore(`template:${id}`);
}

// A record in Explore: the minutes around it in its service, and its context open.
async function openRecord(id) {
  closeDialogs();
  try {
    const ctx = await getJSON(`/api/v1/records/${encodeURIComponent(id)}/context`, { before: 20, after: 20 });
    const t = Date.parse(ctx.record.timestamp);
    state.view = "explore";
    state.q = ctx.record.service ? `service:${quote(ctx.record.service)}` : "";
    state.from = new Date(t - 5 * 60000).toISOString();
    state.to = new Date(t + 5 * 60000).toISOString();
    writeURL(true);
    syncControls();
    render();
    showContext(ctx);
  } catch (err) {
    showFailure(err);
  }
}

// ------------------------------------------------------------------------------------------- explain
function openExplain(record) {
  const dialog = $("explain");
  $("explain-title").textContent = `${record.service || "?"} · ${fmtTime(record.timestamp)}`;
  $("explain-body").replaceChildren(explanation(record.id));
  if (!dialog.open) dialog.showModal();
}

function changeRows(changes) {
  const out = [];
  for (const p of changes.patterns || []) out.push({ score: p.score, what: "pattern", text: p.template ?? `#${p.id}`, before: p.baseline, after: p.window, pattern: p.id });
  for (const v of changes.services || []) out.push({ score: v.score, what: "service", text: String(v.value), before: v.baseline, after: v.window });
  for (const v of changes.hosts || []) out.push({ score: v.score, what: "host", text: String(v.value), before: v.baseline, after: v.window });
  for (const v of changes.attributes || []) out.push({ score: v.score, what: v.field, text: String(v.value), before: v.baseline, after: v.window });
  return out.sort((a, b) => b.score - a.score);
}

// The facts around a record (GET /records/{id}/explain), filled in when they arrive.
function explanation(recordId) {
  const box = el("div", { class: "explanation", dataset: { record: String(recordId) } }, el("div", { class: "muted", text: "Explaining…" }));
  getJSON(`/api/v1/records/${encodeURIComponent(recordId)}/explain`).then((f) => {
    const parts = [];
    const rec = f.record || {};
    parts.push(el("div", { class: `explain-record lv-${levelKey(rec.level)}` },
      el("span", { class: "t", text: fmtTime(rec.timestamp) }), el("span", { class: "level", text: rec.level || "" }),
      el("span", { class: "svc", text: rec.service || "" }), el("span", { class: "msg", text: rec.line || rec.message || "" })));
    const summary = el("section", { class: "llm" }, el("h3", { text: "Summary" }));
    if (f.llm && f.llm.text) summary.append(cited(f.llm.text, "llm-text"), f.llm.cached ? el("span", { class: "muted", text: " (cached)" }) : null);
    else summary.append(el("div", { class: "muted", text: "No LLM is configured: the facts below are what LogLens found. (Set LOGLENS_LLM_PROVIDER for a written summary.)" }));
    parts.push(summary);
    const p = f.pattern;
    if (p) {
      const link = el("a", { href: "#", text: `pattern #${p.id}` });
      link.addEventListener("click", (ev) => { ev.preventDefault(); openPattern(p.id); });
      parts.push(el("section", { class: "explain-pattern" }, el("h3", { text: "Pattern" }),
        el("div", { class: "tpl" }, p.new_in_window ? el("span", { class: "badge", text: "new" }) : null, link, " ", el("code", { text: p.template || "" })),
        el("div", { class: "pattern-stats" }, el("span", { text: `${(p.count_total ?? 0).toLocaleString()} in all · ${p.count_window ?? 0} in the window · ${p.count_baseline ?? 0} in the baseline before · first seen ${fmtTime(p.first_seen)} · last seen ${fmtTime(p.last_seen)}` })),
        el("div", { class: "trend" }, el("span", { class: "muted", text: "last 24 h " }), sparkline(p.trend || [], { width: 240, height: 32 }))));
    }
    const changes = changeRows(f.changes || {});
    const tbody = el("tbody");
    for (const c of changes.slice(0, 10)) {
      const what = el("td", { class: "tpl" });
      if (c.pattern !== undefined) {
        const a = el("a", { href: "#", text: `#${c.pattern} ` });
        a.addEventListener("click", (ev) => { ev.preventDefault(); openPattern(c.pattern); });
        what.append(a);
      }
      what.append(c.text);
      tbody.append(el("tr", {}, el("td", { class: "count", text: c.score.toFixed(1) }), el("td", { class: "what", text: c.what }), what,
        el("td", { class: "count", text: `${c.before} → ${c.after}` })));
    }
    parts.push(el("section", { class: "changes" }, el("h3", { text: "What changed" }),
      el("div", { class: "muted", text: f.window ? `${fmtTime(f.window.from)} → ${fmtTime(f.window.to)}, against the baseline before it, ranked by score` : "" }),
      changes.length ? el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ...["Score", "What", "Value", "Before → window"].map((t) => el("th", { text: t })))), tbody)
        : el("div", { class: "muted", text: "Nothing stands out against the baseline." })));
    const sim = el("ul", { class: "similar" });
    for (const s of f.similar_patterns || []) {
      const a = el("a", { href: "#", text: `#${s.id}` });
      a.addEventListener("click", (ev) => { ev.preventDefault(); openPattern(s.id); });
      sim.append(el("li", {}, a, ` ${s.template} `, el("span", { class: "muted", text: `(${(s.count ?? 0).toLocaleString()}, similarity ${Number(s.score).toFixed(2)})` })));
    }
    parts.push(el("section", {}, el("h3", { text: "Similar patterns" }), sim.childElementCount ? sim : el("div", { class: "muted", text: "None." })));
    if ((f.trace || []).length) {
      parts.push(el("section", {}, el("h3", { text: `Same trace (${f.trace.length})` }),
        el("div", { class: "context-lines" }, ...f.trace.slice(0, 20).map((r) => el("div", { class: `lv-${levelKey(r.level)}` },
          el("span", { class: "t", text: fmtTime(r.timestamp) }), `${r.service || ""}: ${r.line || r.message || ""}`)))));
    }
    box.replaceChildren(...parts);
  }).catch((err) => {
    box.replaceChildren(el("div", { class: "err-text", text: `Could not explain this record: ${err.message}` }));
  });
  return box;
}

// ------------------------------------------------------------------------------------------- anomalies
const KINDS = ["new_pattern", "pattern_spike", "pattern_drop", "service_spike", "service_drop", "error_share", "host_silent"];

function shortTime(iso) {
  return fmtTime(iso).slice(11, 19);
}

function evidenceText(side) {
  return Object.entries(side || {}).map(([k, v]) => {
    if (k.endsWith("_ms") && typeof v === "number") {
      const d = v / 864e5;
      return `${k.slice(0, -3).replace(/_/g, " ")} ${d >= 1 ? `${+d.toFixed(1)} d` : `${+(v / 36e5).toFixed(1)} h`}`;
    }
    const val = typeof v === "number" ? (Number.isInteger(v) ? v.toLocaleString() : v.toFixed(3)) : typeof v === "object" ? JSON.stringify(v) : String(v);
    return `${k.replace(/_/g, " ")} ${val}`;
  }).join(" · ");
}

function drawTimeline(host, report, onPick) {
  host.replaceChildren();
  const list = report.anomalies || [];
  const svcs = [...new Set(list.map((a) => a.service || "—"))].sort();
  const width = Math.max(host.clientWidth, 300);
  const SUB = 18;
  const rowH = 34;
  const lanes = svcs.map((s) => Math.max(2, Math.min(6, list.filter((a) => (a.service || "—") === s).length)));
  const pad = { l: 130, r: 16, t: 6, b: 22 };
  const top = [];
  let acc = pad.t;
  for (const n of lanes) { top.push(acc); acc += n * SUB; }
  const height = Math.max(acc, pad.t + rowH) + pad.b;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" }, host);
  const t0 = Date.parse(report.from);
  const t1 = Date.parse(report.to);
  const w = width - pad.l - pad.r;
  const x = (t) => pad.l + Math.min(1, Math.max(0, (t - t0) / Math.max(1, t1 - t0))) * w;
  const span = t1 - t0;
  const ticks = Math.max(2, Math.floor(w / 130));
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + (span * i) / ticks;
    svg("line", { class: "grid", x1: x(t), x2: x(t), y1: pad.t, y2: height - pad.b }, root);
    const label = svg("text", { class: "axis", x: x(t), y: height - 6, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" }, root);
    const d = new Date(t);
    const hm = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
    label.textContent = span > 36 * 3600e3 ? `${d.getMonth() + 1}/${d.getDate()} ${hm}` : hm;
  }
  if (!list.length) {
    const note = svg("text", { class: "axis", x: pad.l + w / 2, y: pad.t + rowH / 2 + 4, "text-anchor": "middle" }, root);
    note.textContent = "No anomalies in this time range";
    return;
  }
  svcs.forEach((s, i) => {
    const y = top[i] + lanes[i] * SUB / 2;
    if (i) svg("line", { class: "lane", x1: 8, x2: width - pad.r, y1: top[i], y2: top[i] }, root);
    const label = svg("text", { class: "lane-label", x: pad.l - 10, y: y + 4, "text-anchor": "end" }, root);
    label.textContent = s.length > 18 ? `${s.slice(0, 17)}…` : s;
  });
  // one sub-lane per anomaly of a service (so overlapping windows stay apart), the strongest on top
  const seen = new Array(svcs.length).fill(0);
  const placed = list.map((a, i) => {
    const row = svcs.indexOf(a.service || "—");
    const sub = Math.min(seen[row]++, lanes[row] - 1);
    return [a, i, top[row] + sub * SUB + SUB / 2];
  });
  placed.sort(([a], [b]) => a.score - b.score).forEach(([a, i, y]) => {
    const a0 = x(Date.parse(a.window.from));
    const a1 = Math.max(a0 + 2, x(Date.parse(a.window.to)));
    const r = 3.5 + (Math.min(100, a.score) / 100) * 5;
    const g = svg("g", { class: `marker k-${a.kind}`, "data-index": i, tabindex: "0", role: "button" }, root);
    svg("rect", { class: "span", x: a0, y: y - 3, width: a1 - a0, height: 6, rx: 3 }, g);
    svg("circle", { class: "dot", cx: a0, cy: y, r }, g);
    svg("title", {}, g).textContent = `${a.kind} · ${a.service || ""} · score ${a.score}\n${fmtTime(a.window.from)} → ${fmtTime(a.window.to)}${a.pattern ? `\n${a.pattern}` : ""}`;
    g.addEventListener("click", () => onPick(i));
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") onPick(i); });
  });
}

async function anomalies() {
  const job = begin();
  $("anomalies-range").textContent = rangeText();
  $("anomaly-detail").hidden = true;
  try {
    const report = await getJSON("/api/v1/anomalies", { from: state.from, to: state.to }, job.signal);
    const list = report.anomalies || [];
    const pick = (i) => showAnomaly(list[i], i);
    drawTimeline($("anomaly-timeline"), report, pick);
    const kinds = new Set(list.map((a) => a.kind));
    $("anomaly-legend").replaceChildren(...KINDS.filter((k) => kinds.has(k)).map((k) => el("span", { class: `k-${k}`, text: k.replace(/_/g, " ") })),
      list.length ? el("span", { class: "muted plain", text: "marker size: score" }) : null);
    if (!list.length) {
      $("anomalies").replaceChildren(el("div", { class: "empty", text: `No anomalies in the ${rangeText()}. Try a wider time range.` }));
      return;
    }
    const body = el("tbody");
    list.forEach((a, i) => {
      const tr = el("tr", { class: "anomaly", dataset: { index: String(i), kind: a.kind }, tabindex: "0" },
        el("td", { class: "count", text: a.score.toFixed(1) }),
        el("td", {}, el("span", { class: `kind k-${a.kind}`, text: a.kind.replace(/_/g, " ") })),
        el("td", { text: a.service || "" }),
        el("td", { class: "tpl", text: a.pattern ? `#${a.pattern_id} ${a.pattern}` : a.host ? `host ${a.host}` : "" }),
        el("td", { class: "when", title: `${fmtTime(a.window.from)} → ${fmtTime(a.window.to)}`, text: `${shortTime(a.window.from)} → ${shortTime(a.window.to)}` }));
      tr.addEventListener("click", () => pick(i));
      tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") pick(i); });
      body.append(tr);
    });
    $("anomalies").replaceChildren(el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ...["Score", "Kind", "Service", "What", "Window"].map((t) => el("th", { text: t })))), body));
  } catch (err) {
    if (err.name !== "AbortError") $("anomalies").replaceChildren(el("div", { class: "empty err-text", text: err.message }));
    showFailure(err);
  } finally {
    job.end();
  }
}

function showAnomaly(a, index) {
  for (const tr of document.querySelectorAll("#anomalies tr.anomaly")) tr.classList.toggle("selected", tr.dataset.index === String(index));
  for (const g of document.querySelectorAll("#anomaly-timeline .marker")) g.classList.toggle("selected", g.dataset.index === String(index));
  const ev = a.evidence || {};
  const { before, after, example_ids: ids = [], ...rest } = ev;
  const parts = [
    el("div", { class: "detail-head" }, el("span", { class: `kind k-${a.kind}`, text: a.kind.replace(/_/g, " ") }),
      el("strong", { text: ` ${a.service || ""}` }), el("span", { class: "muted", text: ` · score ${a.score}` }),
      el("span", { class: "spacer" }),
      el("button", { type: "button", class: "ghost", text: "Close", onclick: () => { $("anomaly-detail").hidden = true; } })),
    el("div", { class: "muted", text: `${fmtTime(a.window.from)} → ${fmtTime(a.window.to)}` }),
  ];
  if (a.pattern_id !== null && a.pattern_id !== undefined) {
    const link = el("a", { href: "#", text: `pattern #${a.pattern_id}` });
    link.addEventListener("click", (e) => { e.preventDefault(); openPattern(a.pattern_id); });
    parts.push(el("div", { class: "tpl evidence-pattern" }, link, " ", el("code", { text: a.pattern || "" })));
  }
  if (a.host) parts.push(el("div", { text: `host ${a.host}` }));
  parts.push(el("table", { class: "evidence" },
    el("tr", {}, el("th", { text: "Before" }), el("td", { class: "before", text: evidenceText(before) })),
    el("tr", {}, el("th", { text: "After" }), el("td", { class: "after", text: evidenceText(after) })),
    ...(Object.keys(rest).length ? [el("tr", {}, el("th", { text: "Also" }), el("td", { text: evidenceText(rest) }))] : [])));
  const examples = el("ul", { class: "examples" });
  for (const id of ids) examples.append(el("li", {}, citeLink("record", id)));
  parts.push(el("h3", { text: "Example records" }), ids.length ? examples : el("div", { class: "muted", text: "None." }));
  if (ids.length) parts.push(el("h3", { text: `Explanation of record ${ids[0]}` }), explanation(ids[0]));
  $("anomaly-detail").replaceChildren(...parts);
  $("anomaly-detail").hidden = false;
}

// ------------------------------------------------------------------------------------------- ask
function resultTable(headers, rowsData) {
  return el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, ...rowsData.map((cells) => el("tr", {}, ...cells.map((c) => (c instanceof Node ? el("td", {}, c) : el("td", { text: String(c ?? "") })))))));
}

function askResult(reply) {
  const r = reply.result;
  if (!r) return null;
  const op = reply.operation;
  if (op === "count") return el("div", { class: "ask-number", text: Number(r.count).toLocaleString() });
  if (op === "top") return resultTable([r.field || reply.field || "value", "count"], (r.values || []).map((v) => [v.value, v.count.toLocaleString()]));
  if (op === "search") {
    return el("div", {}, el("div", { class: "muted", text: `${(r.count ?? 0).toLocaleString()} records; the newest:` }),
      resultTable(["time", "level", "service", "message"], (r.records || []).map((x) => [citeLink("record", x.id), x.level, x.service, x.line || x.message])));
  }
  if (op === "patterns") {
    return resultTable(["pattern", "count", "template"], (r.patterns || []).map((p) => [citeLink("pattern", p.id), (p.count ?? 0).toLocaleString(), p.template ?? ""]));
  }
  if (op === "histogram" && r.buckets) {
    const host = el("div", { class: "histogram ask-chart" });
    const data = { interval_ms: r.interval_ms, buckets: r.buckets.map((b) => ({ ...b, start_ms: Date.parse(b.start) })) };
    requestAnimationFrame(() => drawHistogram(host, data, () => {}));
    return host;
  }
  if (op === "histogram") {
    return resultTable(["first seen", "last seen"], [[fmtTime(r.first_seen), fmtTime(r.last_seen)]]);
  }
  if (op === "anomalies") {
    return resultTable(["score", "kind", "service", "what"], (r.anomalies || []).map((a) => [a.score, a.kind, a.service, a.pattern || a.host || ""]));
  }
  return null;
}

async function ask(question) {
  const box = $("ask-answer");
  box.hidden = false;
  box.replaceChildren(el("div", { class: "muted", text: "Thinking…" }));
  try {
    const reply = await getJSON("/api/v1/ask", {}, undefined, {
      method: "POST", body: JSON.stringify({ question }), headers: { "Content-Type": "application/json" },
    });
    const parts = [];
    if (reply.query || reply.operation) {
      const open = el("button", { type: "button", class: "open-explore", text: "Open in Explore" });
      open.addEventListener("click", () => {
        state.view = "explore";
        state.q = reply.query || "";
        state.from = reply.from || "0";
        state.to = reply.to || "now";
        writeURL(true);
        syncControls();
        render();
      });
      parts.push(el("div", { class: "ask-query" }, el("span", { class: "muted", text: "query " }), el("code", { class: "q", text: reply.query || "*" }),
        el("span", { class: "muted", text: ` · ${reply.operation || "?"}${reply.field ? ` by ${reply.field}` : ""} · ${reply.from ? fmtTime(reply.from) : "the beginning"} → ${fmtTime(reply.to)}${reply.llm_used ? " · written by the LLM" : ""}` }),
        open));
    }
    const result = askResult(reply);
    if (result) parts.push(el("div", { class: `ask-result op-${reply.operation}` }, result));
    parts.push(el("p", { class: "ask-text" }, cited(reply.answer || "")));
    box.replaceChildren(...parts);
  } catch (err) {
    box.replaceChildren(el("div", { class: "err-text", text: err.message }));
  }
}

const chat = { messages: [], controller: null };

async function sendChat(text) {
  if (chat.controller) chat.controller.abort();
  chat.controller = new AbortController();
  const me = chat.controller;
  chat.messages.push({ role: "user", content: text });
  const log = $("chat-log");
  log.append(el("div", { class: "msg-user", text }));
  const body = el("div", { class: "msg-text" }, el("span", { class: "muted", text: "…" }));
  const meta = el("div", { class: "muted msg-meta" });
  const bubble = el("div", { class: "msg-assistant" }, body, meta);
  log.append(bubble);
  bubble.scrollIntoView({ block: "nearest" });
  let answer = "";
  try {
    await streamEvents("/api/v1/chat", {}, me.signal, (event, data) => {
      let d;
      try { d = JSON.parse(data); } catch { return; }
      if (event === "meta") meta.textContent = d.query ? `query ${d.query} · ${d.operation || ""}` : "";
      else if (event === "delta") { answer += d.text || ""; body.replaceChildren(cited(answer)); }
      else if (event === "done") {
        answer = d.answer || answer;
        body.replaceChildren(cited(answer));
        const n = (d.citations || []).length;
        meta.textContent = `${meta.textContent}${n ? ` · ${n} citation${n === 1 ? "" : "s"}` : ""}${d.llm_used ? " · LLM" : ""}`;
        bubble.dataset.done = "1";
      } else if (event === "error") body.replaceChildren(el("span", { class: "err-text", text: d.error || "error" }));
    }, { method: "POST", body: JSON.stringify({ messages: chat.messages, stream: true }), headers: { "Content-Type": "application/json" } });
    chat.messages.push({ role: "assistant", content: answer });
  } catch (err) {
    if (err.name !== "AbortError") body.replaceChildren(el("span", { class: "err-text", text: err.message }));
  }
}

// ------------------------------------------------------------------------------------------- setup
function theme(next) {
  const t = next || localStorage.getItem("loglens.theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  document.documentElement.dataset.theme = t;
  localStorage.setItem("loglens.theme", t);
  $("theme").textContent = t === "dark" ? "☀ Light" : "☾ Dark";
}

async function loadFields() {
  try {
    const f = await getJSON("/api/v1/fields");
    bar.setFields(f.builtin || [], f.attributes || []);
  } catch {
    bar.setFields(["level", "service", "host", "trace_id", "template"], []);
  }
}

function init() {
  theme();
  bar = new QueryBar({ input: $("q"), overlay: $("qhl"), list: $("complete"), error: $("qerror"), onRun: () => run() });
  readURL();
  syncControls();
  $("key-button").hidden = !apiKey();
  $("key-button").addEventListener("click", () => { forgetKey(); $("key-button").hidden = true; render(); });
  $("theme").addEventListener("click", () => {
    theme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
  });
  $("run").addEventListener("click", () => run());
  $("cancel").addEventListener("click", cancel);
  $("range").addEventListener("change", () => {
    const custom = $("range").value === "custom";
    $("custom").hidden = !custom;
    if (custom) { $("from").value = state.from; $("to").value = state.to; $("from").focus(); } else run();
  });
  for (const id of ["from", "to"]) $(id).addEventListener("keydown", (ev) => { if (ev.key === "Enter") run(); });
  $("tail").addEventListener("change", () => ($("tail").checked ? startTail() : stopTail()));
  $("context-close").addEventListener("click", () => $("context").close());
  $("explain-close").addEventListener("click", () => $("explain").close());
  $("explain").addEventListener("click", (ev) => { if (ev.target === $("explain")) $("explain").close(); });
  $("ask-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("ask-q").value.trim();
    if (text) ask(text);
  });
  $("chat-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("chat-input").value.trim();
    if (!text) return;
    $("chat-input").value = "";
    sendChat(text);
  });
  $("context").addEventListener("click", (ev) => { if (ev.target === $("context")) $("context").close(); });
  for (const a of document.querySelectorAll("#nav a")) {
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      state.view = a.dataset.view;
      writeURL(true);
      syncControls();
      render();
    });
  }
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    if (ev.key === "/" && !(t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement)) {
      ev.preventDefault();
      $("q").focus();
    }
  });
  window.addEventListener("popstate", () => { readURL(); syncControls(); render(); });
  window.addEventListener("scroll", () => {
    if (tail && atTop() && tail.pending.length && !tail.scheduled) tail.flush();
    else if (tail && !atTop() && tail.pending.length === 0) $("tail-status").textContent = "❚❚ paused while scrolled (scroll to the top to resume)";
    else if (tail && atTop() && !tail.pending.length) $("tail-status").textContent = "● live";
  }, { passive: true });
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && state.view === "explore") loadMore();
  }, { rootMargin: "400px" }).observe($("more"));
  let resizeTimer;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => { if (state.view === "explore" && lastHist) renderHistogram(lastHist); }, 200); });
  if (state.view === "ask") $("ask-q").focus();
  render();
  loadFields();
  if (state.view === "explore") $("q").focus();
}

init();
