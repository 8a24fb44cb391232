// The query bar: an <input> over a highlighted copy of its text, field-name completion, inline errors.
const TOKEN = /(\s+)|("(?:[^"\\]|\\.)*"?)|(\/(?:[^/\\]|\\.)+\/?)|([()])|\b(AND|OR|NOT)\b|([A-Za-z_@][\w.@-]*)(:|>=|<=|!=|>|<|=)|(-(?=\S))|(\d+(?:\.\d+)?\b)|([^\s()"]+)/gy;

export function tokens(text) {
  const out = [];
  TOKEN.lastIndex = 0;
  let m;
  while (TOKEN.lastIndex < text.length && (m = TOKEN.exec(text))) {
    if (m[1]) out.push(["", m[1]]);
    else if (m[2]) out.push(["t-str", m[2]]);
    else if (m[3]) out.push(["t-regex", m[3]]);
    else if (m[4]) out.push(["t-paren", m[4]]);
    else if (m[5]) out.push(["t-op", m[5]]);
    else if (m[6]) { out.push(["t-field", m[6]]); out.push(["t-op", m[7]]); }
    else if (m[8]) out.push(["t-neg", m[8]]);
    else if (m[9]) out.push(["t-num", m[9]]);
    else out.push(["", m[10]]);
  }
  if (TOKEN.lastIndex < text.length) out.push(["", text.slice(TOKEN.lastIndex)]);
  return out;
}

export class QueryBar {
  constructor({ input, overlay, list, error, onRun }) {
    this.input = input;
    this.overlay = overlay;
    this.list = list;
    this.error = error;
    this.onRun = onRun;
    this.fields = [];
    this.errorAt = null;
    this.items = [];
    this.selected = -1;
    input.addEventListener("input", () => { this.clearError(); this.render(); this.complete(); });
    input.addEventListener("scroll", () => { overlay.scrollLeft = input.scrollLeft; });
    input.addEventListener("keyup", () => { overlay.scrollLeft = input.scrollLeft; });
    input.addEventListener("blur", () => setTimeout(() => this.close(), 150));
    input.addEventListener("keydown", (ev) => this.key(ev));
    list.addEventListener("mousedown", (ev) => {
      const li = ev.target.closest("li");
      if (!li) return;
      ev.preventDefault();
      this.accept(Number(li.dataset.index));
    });
  }

  get value() { return this.input.value; }
  set value(v) { this.input.value = v; this.clearError(); this.render(); }

  setFields(builtin, attributes) {
    const names = new Map();
    for (const f of builtin) names.set(f === "template_id" ? "template" : f, "field");
    for (const a of attributes) if (!names.has(a)) names.set(a, "attribute");
    this.fields = [...names.entries()];
  }

  render() {
    const text = this.input.value;
    const frag = document.createDocumentFragment();
    let pos = 0;
    for (const [cls, part] of tokens(text)) {
      const start = pos;
      pos += part.length;
      if (this.errorAt !== null && this.errorAt >= start && this.errorAt < pos) {
        const cut = this.errorAt - start;
        this.append(frag, cls, part.slice(0, cut));
        this.append(frag, `${cls} t-error`, part.slice(cut, cut + 1));
        this.append(frag, cls, part.slice(cut + 1));
      } else {
        this.append(frag, cls, part);
      }
    }
    if (this.errorAt !== null && this.errorAt >= text.length) this.append(frag, "t-error", " ");
    this.overlay.replaceChildren(frag);
    this.overlay.scrollLeft = this.input.scrollLeft;
  }

  append(frag, cls, text) {
    if (!text) return;
    if (!cls.trim()) { frag.appendChild(document.createTextNode(text)); return; }
    const span = document.createElement("span");
    span.className = cls.trim();
    span.textContent = text;
    frag.appendChild(span);
  }

  showError(message, position, caret) {
    this.errorAt = typeof position === "number" ? position : null;
    const lines = Array.isArray(caret) ? caret.join("\n") : caret || "";
    this.error.textContent = lines ? `${message}\n${lines}` : message;
    this.error.hidden = false;
    this.render();
  }

  clearError() {
    if (this.errorAt === null && this.error.hidden) return;
    this.errorAt = null;
    this.error.hidden = true;
    this.error.textContent = "";
    this.render();
  }

  // the word being typed at the caret
  word() {
    const text = this.input.value;
    const end = this.input.selectionStart ?? text.length;
    let start = end;
    while (start > 0 && !/[\s()"]/.test(text[start - 1])) start--;
    if (text[start] === "-") start++;
    return { start, end, prefix: text.slice(start, end) };
  }

  complete() {
    const { prefix } = this.word();
    if (!prefix || /[:<>=]/.test(prefix) || /^(AND|OR|NOT)$/.test(prefix)) { this.close(); return; }
    const low = prefix.toLowerCase();
    this.items = this.fields.filter(([name]) => name.toLowerCase().startsWith(low) && name !== prefix).slice(0, 12);
    if (!this.items.length) { this.close(); return; }
    this.selected = -1;
    this.list.replaceChildren(...this.items.map(([name, kind], i) => {
      const li = document.createElement("li");
      li.setAttribute("role", "option");
      li.dataset.index = String(i);
      li.textContent = `${name}:`;
      const small = document.createElement("small");
      small.textContent = kind;
      li.appendChild(small);
      return li;
    }));
    this.list.hidden = false;
  }

  close() {
    this.list.hidden = true;
    this.items = [];
    this.selected = -1;
  }

  move(delta) {
    if (!this.items.length) return;
    this.selected = (this.selected + delta + this.items.length) % this.items.length;
    [...this.list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === this.selected)));
  }

  accept(index) {
    const item = this.items[index];
    if (!item) return;
    const { start, end } = this.word();
    const text = this.input.value;
    const insert = `${item[0]}:`;
    this.input.value = text.slice(0, start) + insert + text.slice(end);
    const caret = start + insert.length;
    this.input.setSelectionRange(caret, caret);
    this.close();
    this.clearError();
    this.render();
    this.input.focus();
  }

  key(ev) {
    const open = !this.list.hidden && this.items.length;
    if (open && ev.key === "ArrowDown") { ev.preventDefault(); this.move(1); }
    else if (open && ev.key === "ArrowUp") { ev.preventDefault(); this.move(-1); }
    else if (open && ev.key === "Tab") { ev.preventDefault(); this.accept(this.selected < 0 ? 0 : this.selected); }
    else if (open && ev.key === "Enter" && this.selected >= 0) { ev.preventDefault(); this.accept(this.selected); }
    else if (ev.key === "Escape") { this.close(); }
    else if (ev.key === "Enter") { ev.preventDefault(); this.close(); this.onRun(); }
  }
}
