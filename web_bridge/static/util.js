// Small helpers shared by the page's modules: DOM lookup, times, the JSON API, highlights,
// messages and the status pill.
export const $ = (id) => document.getElementById(id);

export function fmt(t) {
  const s = Math.max(0, Math.floor(t));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

// A final ends a sentence, the next one starts after a pause, or another speaker takes
// over: where paragraphs break, in the live view and in a stored transcript alike.
export function endsSentence(text) { return /[.?!…]["')\]]*$/.test(text.trim()); }
export function startsPara(prev, seg) {
  return !prev || endsSentence(prev.text) || seg.start - prev.end > 1.5 || (prev.speaker || "") !== (seg.speaker || "");
}

// Speakers: a colour per label from a small palette (each AA on white; the name is always
// shown as text too), and the name the user gave the label, else the label itself.
const PALETTE = 6;
export function speakerClass(label) {
  const n = Number((/\d+/.exec(label || "") || ["0"])[0]);
  return `spk spk-${n > 0 ? (n - 1) % PALETTE : 0}`;
}
export function speakerName(label, names) { return ((names || {})[label] || "").trim() || label; }

// Errors go next to what the user did: the Live tab's message or the History tab's.
export function showMessage(text, where = "message") { const m = $(where); m.textContent = text; m.hidden = !text; }

let unauthorized = () => {};
export function onUnauthorized(fn) { unauthorized = fn; }
export function signedOut() { unauthorized(); }

export async function api(path, opts) {
  const r = await fetch(path, opts);
  if (r.status === 401) unauthorized();
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).error.message; } catch (_) { /* plain text */ }
    throw new Error(detail || `HTTP ${r.status}`);
  }
  return r;
}
export const getJSON = async (path) => (await api(path)).json();
export const sendJSON = async (path, method, body) => (await api(path, {
  method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
})).json();

// Highlight ranges are in Unicode code points (as the API counts them), not UTF-16 units.
export function marked(text, ranges) {
  const cps = Array.from(text);
  const frag = document.createDocumentFragment(); let pos = 0;
  for (const [s, e] of ranges) {
    frag.append(document.createTextNode(cps.slice(pos, s).join("")));
    const m = document.createElement("mark"); m.textContent = cps.slice(s, e).join(""); frag.append(m); pos = e;
  }
  frag.append(document.createTextNode(cps.slice(pos).join("")));
  return frag;
}

export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e[k] = v;
    else if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

// ---- the status pill: one explicit state, its words, and (while recording) a clock ---------
export const Status = Object.freeze({
  IDLE: "idle", CONNECTING: "connecting", LIVE: "live", RECONNECTING: "reconnecting",
  SAVING: "saving", SAVED: "saved", ERROR: "error",
});
const LABEL = {
  idle: "Ready", connecting: "Connecting…", live: "Live", reconnecting: "Connection lost, reconnecting…",
  saving: "Saving…", saved: "Saved", error: "Error",
};
const pill = { status: Status.IDLE, since: 0, timer: 0 };

export function status() { return pill.status; }
// The words are in a polite status region; the clock is a separate role=timer (not
// announced every second), shown while recording (live or reconnecting).
export function setStatus(s, since) {
  pill.status = s;
  if (since !== undefined) pill.since = since;
  $("pill").className = `conn ${s}`;
  $("conn").textContent = LABEL[s];
  const counting = s === Status.LIVE || s === Status.RECONNECTING;
  $("elapsed").hidden = !counting;
  clearInterval(pill.timer);
  if (counting) {
    const tick = () => { $("elapsed").textContent = fmt((Date.now() - pill.since) / 1000); };
    tick(); pill.timer = setInterval(tick, 500);
  }
}
