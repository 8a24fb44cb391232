// Talking to the API: the API key (kept in sessionStorage, asked for on a 401), aborts, errors.
const KEY = "loglens.apiKey";
let keyPrompt = null;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

function headers() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export function url(path, params = {}) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

// Ask the user for a key once, however many requests got a 401 at the same time.
export function askForKey() {
  if (keyPrompt) return keyPrompt;
  const dialog = document.getElementById("keydialog");
  const input = document.getElementById("keyinput");
  keyPrompt = new Promise((resolve) => {
    const done = (ok) => {
      dialog.close();
      keyPrompt = null;
      resolve(ok);
    };
    document.getElementById("keyform").onsubmit = (ev) => {
      ev.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      sessionStorage.setItem(KEY, value);
      input.value = "";
      document.getElementById("key-button").hidden = false;
      done(true);
    };
    document.getElementById("keycancel").onclick = () => done(false);
    dialog.oncancel = () => done(false);
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
  return keyPrompt;
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

// fetch with the key; on 401 ask for a key and try again.
export async function request(path, params = {}, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(url(path, params), { ...options, headers: { ...headers(), ...(options.headers || {}) } });
    if (response.status === 401 && attempt < 3) {
      if (apiKey()) forgetKey();
      if (await askForKey()) continue;
    }
    return response;
  }
}

export async function getJSON(path, params = {}, signal = undefined, init = {}) {
  const response = await request(path, params, { ...init, signal, headers: { Accept: "application/json", ...(init.headers || {}) } });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// Server-Sent Events over fetch (EventSource cannot send the Authorization header).
// `init` may carry a method and a JSON body (POST /api/v1/chat streams its answer the same way).
export async function streamEvents(path, params, signal, onEvent, init = {}) {
  const response = await request(path, params, { ...init, signal, headers: { Accept: "text/event-stream", ...(init.headers || {}) } });
  if (!response.ok || !response.body) {
    let body = null;
    try { body = await response.json(); } catch { body = null; }
    throw new ApiError(response.status, body);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") event = val;
        else if (field === "data") data.push(val);
      }
      if (data.length) onEvent(event, data.join("\n"));
    }
  }
}
