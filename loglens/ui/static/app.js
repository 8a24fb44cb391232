// LogLens web UI. Every piece of data reaches the page through textContent or DOM attributes:
// log lines are hostile input and are never parsed as HTML.
import { ApiError, apiKey, forgetKey, getJSON, streamEvents } from "./api.js";
import { LEVELS, drawHistogram, levelKey, sparkline } from "./charts.js";
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
  $("bar").hidden = state.view === "anomalies" || state.view === "ask";
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
      el("span", { class: "hint", text: "Click a value to filter by it; alt-click or right-click to exclude it." })),
  );
}

async function openContext(record) {
  const dialog = $("context");
  $("context-title").textContent = `${record.service || "?"} · ${record.host || "?"} · ${fmtTime(record.timestamp)}`;
  $("context-lines").replaceChildren(el("div", { class: "muted", text: "Loading…" }));
  if (!dialog.open) dialog.showModal();
  try {
    const ctx = await getJSON(`/api/v1/records/${encodeURIComponent(record.id)}/context`, { before: 20, after: 20 });
    const line = (r, focus) => el("div", { class: `lv-${levelKey(r.level)}${focus ? " focus" : ""}` },
      el("span", { class: "t", text: fmtTime(r.timestamp) }), r.line || r.message || "");
    $("context-lines").replaceChildren(...ctx.before.map((r) => line(r, false)), line(ctx.record, true),
      ...ctx.after.map((r) => line(r, false)));
    dialog.querySelector(".focus")?.scrollIntoView({ block: "center" });
  } catch (err) {
    $("context-lines").replaceChildren(el("div", { class: "err-text", text: err.message }));
  }
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
  render();
  loadFields();
  if (state.view === "explore") $("q").focus();
}

init();
