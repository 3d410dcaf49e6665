// Live Transcribe page: microphone -> MediaRecorder chunks -> WebSocket -> live text;
// history: list, search, read, replay, rename, tag, export, delete. No inline script (CSP).
const $ = (id) => document.getElementById(id);
const state = {
  ws: null, recorder: null, stream: null, transcriptId: "", pending: [],
  recording: false, stopping: false, retries: 0, chunkMs: 250, mime: "", audioCtx: null,
  nextIndex: 0,
};

function fmt(t) {
  const s = Math.max(0, Math.floor(t));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}
function setConn(cls, text) { const c = $("conn"); c.className = `conn ${cls}`; c.textContent = text; }
function showMessage(text) { const m = $("message"); m.textContent = text; m.hidden = !text; }

// ---- live transcript rendering ---------------------------------------------
function transcriptEl() {
  const el = $("transcript");
  const ph = el.querySelector(".placeholder");
  if (ph) ph.remove();
  return el;
}
function interimEl() {
  let el = $("interim");
  if (!el) { el = document.createElement("span"); el.id = "interim"; el.className = "interim"; transcriptEl().append(el); }
  return el;
}
// Finals can be a few words each: a time stamp (and a new line) only where a sentence
// ended or the speaker paused, so the live text reads as paragraphs.
function startsPara(prev, seg) {
  return !prev || /[.?!…]["')\]]*$/.test(prev.text) || seg.start - prev.end > 1.5;
}
function segOf(el) {
  return el && el.classList.contains("seg")
    ? { text: el.lastChild.textContent.trim(), start: Number(el.dataset.start), end: Number(el.dataset.end) } : null;
}
// Decided from the segment shown before it, so a gap filled in or a revised text (which may
// now end a sentence) re-marks its neighbour too.
function markPara(el) {
  const seg = segOf(el);
  if (!seg) return;
  const fresh = startsPara(segOf(el.previousElementSibling), seg);
  el.classList.toggle("para", fresh);
  let t = el.querySelector(".t");
  if (fresh && !t) { t = document.createElement("span"); t.className = "t"; el.prepend(t); }
  if (fresh) t.textContent = fmt(seg.start); else if (t) t.remove();
}
function addFinal(msg, filling = false) {
  // One element per segment_index: a revision (the server re-decoded the sentence, and
  // storage holds the new text) replaces the text and times of the one already shown.
  let seg = transcriptEl().querySelector(`.seg[data-index="${msg.segment_index}"]`);
  if (!seg) {
    seg = document.createElement("span"); seg.className = "seg"; seg.dataset.index = msg.segment_index;
    seg.append(document.createTextNode(""));
    // In segment order, also when a gap is filled in after newer finals have arrived.
    const later = [...transcriptEl().querySelectorAll(".seg")].find((e) => Number(e.dataset.index) > msg.segment_index);
    transcriptEl().insertBefore(seg, later || interimEl());
  }
  seg.dataset.start = msg.start; seg.dataset.end = msg.end;
  seg.lastChild.textContent = msg.text + " ";
  markPara(seg); markPara(seg.nextElementSibling);
  if (filling) return;
  state.nextIndex = Math.max(state.nextIndex, msg.segment_index + 1);
  if (!msg.revision) interimEl().textContent = "";  // a revision is of an older sentence
}

// After a reconnect the server may have made final (and stored) words this page never
// received: the resumed stream starts at a later segment. Fetch the missing ones.
async function fillGap(id, from, to) {
  try {
    const t = await (await api(`/api/transcripts/${id}`)).json();
    for (const s of t.segments) {
      if (s.index >= from && s.index < to && !document.querySelector(`.seg[data-index="${s.index}"]`)) {
        addFinal({ segment_index: s.index, text: s.text, start: s.start, end: s.end }, true);
      }
    }
  } catch (err) { showMessage(`Some words said during the reconnect could not be shown: ${err.message}`); }
}

// ---- microphone -------------------------------------------------------------
function pickMime() {
  if (typeof MediaRecorder === "undefined") return null;
  for (const m of ["audio/webm;codecs=opus", "audio/ogg;codecs=opus"]) if (MediaRecorder.isTypeSupported(m)) return m;
  return null;
}
function micError(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") return "Microphone permission was denied. Allow microphone access for this site in your browser settings, then press Start again.";
  if (name === "NotFoundError" || name === "OverconstrainedError") return "No microphone was found. Connect a microphone and press Start again.";
  if (name === "NotReadableError") return "The microphone is in use by another application or could not be opened.";
  return `The microphone could not be started (${name || err}).`;
}

function meter(stream) {
  try {
    state.audioCtx = new AudioContext();
    const src = state.audioCtx.createMediaStreamSource(stream);
    const an = state.audioCtx.createAnalyser(); an.fftSize = 512; src.connect(an);
    const buf = new Uint8Array(an.fftSize);
    const tick = () => {
      if (!state.recording) { $("level").style.width = "0"; return; }
      an.getByteTimeDomainData(buf);
      let peak = 0; for (const v of buf) peak = Math.max(peak, Math.abs(v - 128));
      $("level").style.width = `${Math.min(100, (peak / 128) * 140)}%`;
      requestAnimationFrame(tick);
    };
    tick();
  } catch (_) { /* the meter is optional */ }
}

// One MediaRecorder per connection: a new gRPC stream must start with a container header,
// and a browser's WebM may not start a new Cluster for many seconds, so after a drop the
// page starts a new recorder (its chunks are kept until the connection is back) instead of
// sending the rest of a stream the server no longer has.
function makeRecorder() {
  const rec = new MediaRecorder(state.stream, { mimeType: state.mime });
  rec.ondataavailable = (ev) => { if (rec === state.recorder && ev.data && ev.data.size) send(ev.data); };
  rec.onstop = () => { if (rec === state.recorder) finishStop(); };
  rec.start(state.chunkMs);
  return rec;
}

function restartRecorder() {
  const old = state.recorder;
  state.pending = [];  // chunks of the old stream are useless to a new one
  state.recorder = makeRecorder();
  if (old && old.state !== "inactive") old.stop();
}

async function start() {
  showMessage("");
  if (!window.isSecureContext) { showMessage("The microphone needs a secure page: open this site over https:// or on localhost."); return; }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { showMessage("This browser cannot access a microphone (no MediaDevices API)."); return; }
  const mime = pickMime();
  if (!mime) { showMessage("This browser cannot record audio as Opus (MediaRecorder with WebM or Ogg is missing). Try a current Chrome, Edge or Firefox."); return; }
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  } catch (err) { showMessage(micError(err)); return; }
  state.mime = mime; state.transcriptId = ""; state.pending = []; state.retries = 0;
  state.recording = true; state.stopping = false;
  $("record").textContent = "■ Stop"; $("record").classList.add("recording"); $("record").setAttribute("aria-pressed", "true");
  $("transcript").replaceChildren(); state.nextIndex = 0;
  meter(state.stream);
  await connect();  // the socket is open before recording starts
  state.recorder = makeRecorder();
}

function send(blob) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN && state.ws.started) state.ws.send(blob);
  else state.pending.push(blob);  // kept while reconnecting, sent on reconnect
}

function connect() {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    ws.binaryType = "arraybuffer"; state.ws = ws;
    setConn("retry", state.retries ? "Reconnecting…" : "Connecting…");
    ws.onopen = () => {
      const config = { encoding: state.mime.startsWith("audio/webm") ? "webm" : "ogg", interim_results: true, title: $("title").value };
      if (state.transcriptId) config.resume_transcript_id = state.transcriptId;
      ws.send(JSON.stringify({ type: "start", config }));
      ws.started = true; setConn("open", "Live");
      for (const b of state.pending.splice(0)) ws.send(b);  // audio captured while disconnected
      if (state.stopping) ws.send(JSON.stringify({ type: "stop" }));
      resolve();
    };
    ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
    ws.onerror = () => {};
    ws.onclose = () => {
      ws.started = false;
      if (state.recording || (state.stopping && !ws.ended)) {
        if (state.recording && state.retries === 0) restartRecorder();
        state.retries += 1;
        const delay = Math.min(8000, 500 * 2 ** Math.min(state.retries, 4));
        setConn("retry", "Connection lost, reconnecting…");
        setTimeout(() => connect().then(() => {}), delay);
      } else if (!ws.ended) {
        setConn("idle", "Not connected");
      }
      resolve();
    };
  });
}

function onMessage(msg) {
  if (msg.type === "session") {
    const resumed = state.transcriptId === msg.transcript_id;
    state.transcriptId = msg.transcript_id; state.retries = 0;
    if (state.handover) { state.handover = false; showMessage(""); }
    if (resumed && msg.first_segment_index > state.nextIndex) fillGap(msg.transcript_id, state.nextIndex, msg.first_segment_index);
  }
  else if (msg.type === "interim") interimEl().textContent = msg.text;
  else if (msg.type === "final") addFinal(msg);
  else if (msg.type === "error" && msg.code === "UNAVAILABLE" && state.recording) {
    // The server is restarting: what it made final is stored; the socket closes and
    // the page reconnects, resuming the same transcript on another server.
    state.handover = true; showMessage("The transcription server is restarting; continuing on another one…");
  } else if (msg.type === "error" && msg.code === "ABORTED" && state.recording) {
    // The dropped connection's stream is still storing its last words: retry shortly.
    state.handover = true; showMessage("Reconnecting: the previous connection is still being saved…");
  } else if (msg.type === "error" && msg.code === "UNAUTHENTICATED") {
    stop(); showLogin(true);
  } else if (msg.type === "error") {
    showMessage(`The transcription service reported ${msg.code}: ${msg.message}`);
    if (msg.code === "INVALID_ARGUMENT") state.recording = false;
  } else if (msg.type === "end") {
    state.ws.ended = true; setConn("idle", "Saved"); interimEl().textContent = "";
    loadList();
  }
}

function stop() {
  state.stopping = true; state.recording = false;
  $("record").textContent = "● Start recording"; $("record").classList.remove("recording"); $("record").setAttribute("aria-pressed", "false");
  if (state.recorder && state.recorder.state !== "inactive") state.recorder.stop(); else finishStop();
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  if (state.audioCtx) state.audioCtx.close();
}
function finishStop() {
  // The recorder has flushed its last chunk; stop makes the server finalize the last words.
  setTimeout(() => { if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ type: "stop" })); }, 50);
}

// ---- history -----------------------------------------------------------------
// ---- sign-in (the bridge keeps the key in an HttpOnly cookie; the page never sees it again)
function showLogin(on) {
  $("login").hidden = !on;
  document.querySelector("nav").hidden = on;
  if (on) { $("live").hidden = true; $("history").hidden = true; $("api-key").focus(); }
  else if ($("live").hidden && $("history").hidden) showTab("live");
}
async function checkSession() {
  const s = await (await fetch("/api/session")).json();
  showLogin(!s.authenticated);
  $("logout").hidden = !(s.authenticated && s.login_required);
}
async function login(ev) {
  ev.preventDefault();
  const r = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ api_key: $("api-key").value }) });
  $("api-key").value = "";
  const err = $("login-error");
  if (r.ok) { err.hidden = true; await checkSession(); return; }
  err.textContent = r.status === 401 ? "That API key was not accepted." : `Sign-in failed (HTTP ${r.status}).`;
  err.hidden = false;
}
async function logout() {
  if (state.recording) stop();
  await fetch("/api/logout", { method: "POST" });
  $("list").replaceChildren(); $("detail").replaceChildren();
  await checkSession();
}

async function api(path, opts) {
  const r = await fetch(path, opts);
  if (r.status === 401) showLogin(true);
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).error.message; } catch (_) { /* plain text */ }
    throw new Error(detail);
  }
  return r;
}
function marked(text, ranges) {
  const frag = document.createDocumentFragment(); let pos = 0;
  for (const [s, e] of ranges) {
    frag.append(document.createTextNode(text.slice(pos, s)));
    const m = document.createElement("mark"); m.textContent = text.slice(s, e); frag.append(m); pos = e;
  }
  frag.append(document.createTextNode(text.slice(pos)));
  return frag;
}
async function loadList() {
  const data = await (await api("/api/transcripts?page_size=50")).json();
  const ul = $("list"); ul.replaceChildren();
  if (!data.transcripts.length) { const li = document.createElement("li"); li.className = "placeholder"; li.textContent = "No meetings yet."; ul.append(li); }
  for (const t of data.transcripts) {
    const li = document.createElement("li"); li.dataset.id = t.id;
    const title = document.createElement("div"); title.textContent = t.title || "Untitled meeting";
    const meta = document.createElement("div"); meta.className = "meta";
    meta.textContent = `${new Date(t.created).toLocaleString()} · ${fmt(t.duration)} · ${t.status}`;
    li.append(title, meta); li.onclick = () => openTranscript(t.id, 0); ul.append(li);
  }
}
async function runSearch(ev) {
  ev.preventDefault();
  const q = $("search").value.trim();
  if (!q) return loadList();
  const ul = $("list"); ul.replaceChildren();
  try {
    const data = await (await api(`/api/search?q=${encodeURIComponent(q)}`)).json();
    if (!data.hits.length) { const li = document.createElement("li"); li.className = "placeholder"; li.textContent = "Nothing found."; ul.append(li); }
    for (const h of data.hits) {
      const li = document.createElement("li"); li.className = "hit"; li.dataset.id = h.transcript_id;
      const title = document.createElement("div"); title.textContent = `${h.title || "Untitled meeting"} · ${fmt(h.start)}`;
      const snip = document.createElement("div"); snip.className = "meta"; snip.append(marked(h.snippet, h.highlights));
      li.append(title, snip); li.onclick = () => openTranscript(h.transcript_id, h.start); ul.append(li);
    }
  } catch (err) { showMessage(`Search failed: ${err.message}`); }
}
async function openTranscript(id, at) {
  const t = await (await api(`/api/transcripts/${id}`)).json();
  const d = $("detail"); d.replaceChildren();
  const h = document.createElement("h2"); h.textContent = t.title || "Untitled meeting";
  const tags = document.createElement("div"); tags.className = "tags";
  for (const tag of t.tags) { const s = document.createElement("span"); s.textContent = tag; tags.append(s); }
  const actions = document.createElement("div"); actions.className = "actions";
  const mk = (label, fn) => { const b = document.createElement("button"); b.textContent = label; b.onclick = fn; actions.append(b); return b; };
  mk("Rename", async () => { const v = prompt("New title", t.title); if (v !== null) { await api(`/api/transcripts/${id}`, { method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ title: v }) }); openTranscript(id, 0); loadList(); } });
  mk("Tags", async () => { const v = prompt("Tags, comma separated", t.tags.join(", ")); if (v !== null) { await api(`/api/transcripts/${id}`, { method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ tags: v.split(",").map((x) => x.trim()).filter(Boolean) }) }); openTranscript(id, 0); } });
  for (const f of ["txt", "srt", "vtt", "json"]) { const a = document.createElement("a"); a.href = `/api/transcripts/${id}/export?format=${f}`; a.textContent = f.toUpperCase(); a.className = "export"; a.setAttribute("download", ""); const b = document.createElement("button"); b.append(a); actions.append(b); }
  mk("Delete", async () => { if (confirm("Delete this meeting, its text and its recording?")) { await api(`/api/transcripts/${id}`, { method: "DELETE" }); d.replaceChildren(); loadList(); } });
  d.append(h, tags, actions);
  let audio = null;
  if (t.recording) { audio = document.createElement("audio"); audio.controls = true; audio.preload = "metadata"; audio.src = `/api/transcripts/${id}/recording`; d.append(audio); }
  // Final results can be a few words each: show them as paragraphs (a new one after a
  // sentence end or a pause), every segment still a clickable span that seeks the audio.
  const segs = document.createElement("div"); segs.className = "segments";
  let para = null, prev = null;
  for (const s of t.segments) {
    if (!para || /[.?!…]["')\]]*$/.test(prev.text) || s.start - prev.end > 1.5) {
      para = document.createElement("p");
      const ts = document.createElement("span"); ts.className = "t"; ts.textContent = fmt(s.start) + " ";
      para.append(ts); segs.append(para);
    }
    const span = document.createElement("span"); span.className = "s"; span.dataset.start = s.start;
    span.textContent = s.text + " ";
    span.onclick = () => { if (audio) { audio.currentTime = s.start; audio.play().catch(() => {}); } };
    para.append(span); prev = s;
  }
  d.append(segs);
  if (audio && at) audio.addEventListener("loadedmetadata", () => { audio.currentTime = at; }, { once: true });
}

function showTab(name) {
  for (const n of ["live", "history"]) { $(n).hidden = n !== name; $(`tab-${n}`).classList.toggle("active", n === name); }
  if (name === "history") loadList().catch((e) => showMessage(e.message));
}

window.addEventListener("DOMContentLoaded", async () => {
  try { state.chunkMs = (await (await fetch("/api/config")).json()).chunk_ms || 250; } catch (_) { /* default */ }
  $("record").onclick = () => (state.recording ? stop() : start());
  $("tab-live").onclick = () => showTab("live");
  $("tab-history").onclick = () => showTab("history");
  $("search-form").onsubmit = runSearch;
  $("login-form").onsubmit = login;
  $("logout").onclick = logout;
  await checkSession();
});
