// The Live tab: microphone -> MediaRecorder chunks -> WebSocket -> live text that follows
// the newest line unless the user scrolled back.
import { $, api, fmt, setStatus, showMessage, speakerClass, speakerName, startsPara, status, Status } from "./util.js";
import { speakerButton } from "./speakers.js";
import { languageName, picker } from "./models.js";
import { lockRemember, rememberVoices } from "./voices.js";

const state = {
  ws: null, recorder: null, stream: null, transcriptId: "", pending: [],
  recording: false, stopping: false, retries: 0, chunkMs: 250, mime: "", audioCtx: null,
  nextIndex: 0, follow: true, names: {}, onSaved: () => {}, onSignedOut: () => {},
  picker: null, choice: { model: "", language_code: "" }, detecting: false, language: "",
  remember: false,
  // `session` counts the recordings started: a socket of an earlier one (still saving its
  // last words) neither shows them in the new one nor reconnects it. `opening`: the
  // microphone is being opened (the button still says Start): a second press waits.
  session: 0, opening: false,
};
export function configureLive({ chunkMs, onSaved, onSignedOut }) {
  state.chunkMs = chunkMs || 250; state.onSaved = onSaved; state.onSignedOut = onSignedOut;
}
export const isRecording = () => state.recording;

// ---- following the newest line ----------------------------------------------------------
// The transcript is its own scroll box. A user scroll away from the bottom stops following
// (and offers "Jump to live"); scrolling back to the bottom, or the button, resumes it.
function nearBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 24; }
function onScroll() { state.follow = nearBottom($("transcript")); $("jump").hidden = state.follow || !state.recording; }
function followNewest() { if (state.follow) { const box = $("transcript"); box.scrollTop = box.scrollHeight; } }
// A hidden box does not scroll: when the Live tab is shown again, catch up with the text.
export function showingLive() { followNewest(); }
export function jumpToLive() { state.follow = true; followNewest(); $("jump").hidden = true; $("transcript").focus(); }

// ---- live transcript rendering -----------------------------------------------------------
// #transcript is a polite role=log announcing additions only: each final is announced once,
// as it is added; the interim text (changing several times a second) is aria-hidden.
function transcriptEl() {
  const box = $("transcript");
  const ph = box.querySelector(".placeholder");
  if (ph) ph.remove();
  return box;
}
function interimEl() {
  let e = $("interim");
  if (!e) { e = document.createElement("span"); e.id = "interim"; e.className = "interim"; e.setAttribute("aria-hidden", "true"); transcriptEl().append(e); }
  return e;
}
// The interim text in its (provisional) speaker's colour.
function setInterim(text, speaker = "", lang = "") {
  const e = interimEl(); e.textContent = text;
  if (lang) e.lang = lang; else e.removeAttribute("lang");
  e.className = `interim${speaker ? ` ${speakerClass(speaker)}` : ""}`;
  followNewest();
}
function segOf(e) {
  return e && e.classList.contains("seg")
    ? { text: e.lastChild.textContent.trim(), start: Number(e.dataset.start), end: Number(e.dataset.end), speaker: e.dataset.speaker || "" } : null;
}
// A time stamp (and a new line) only where a sentence ended, the speaker paused or another
// speaker took over, decided from the segment shown before, so a filled gap or a revised
// text (or speaker) re-marks its neighbour. A paragraph starts with its speaker's name.
function markPara(e) {
  const seg = segOf(e);
  if (!seg) return;
  const fresh = startsPara(segOf(e.previousElementSibling), seg);
  e.className = `seg${fresh ? " para" : ""}${seg.speaker ? ` ${speakerClass(seg.speaker)}` : ""}`;
  let t = e.querySelector(".t");
  if (fresh && !t) { t = document.createElement("span"); t.className = "t"; t.setAttribute("aria-hidden", "true"); e.prepend(t); }
  if (fresh) t.textContent = fmt(seg.start); else if (t) t.remove();
  if (e.querySelector("form.rename")) return;  // being renamed: the form puts the name back
  const who = e.querySelector(".who");
  if (fresh && seg.speaker) {
    if (who && who.dataset.speaker === seg.speaker) who.textContent = speakerName(seg.speaker, state.names);
    else { if (who) who.remove(); t.after(speakerButton(seg.speaker, speakers)); }
  } else if (who) who.remove();
}
// A speaker's name is a button that renames the speaker (its names already shown follow).
const speakers = {
  id: () => state.transcriptId, names: () => state.names, scope: () => $("transcript"),
  saved: (names) => { state.names = names; }, fail: (err) => showMessage(`Renaming the speaker failed: ${err.message}`),
};
// The service recognised a remembered voice: the transcript's names (the whole map) replace
// the labels shown (a name being edited is left to its form).
function showNames(names) {
  state.names = { ...names };
  for (const b of $("transcript").querySelectorAll(".who")) b.textContent = speakerName(b.dataset.speaker, state.names);
}
function addFinal(msg, filling = false) {
  // One element per segment_index: a revision replaces the text and times shown (storage
  // holds the new text); it is not announced again (the log announces additions only).
  const box = transcriptEl();
  let seg = box.querySelector(`.seg[data-index="${msg.segment_index}"]`);
  const fresh = !seg;
  if (fresh) {
    seg = document.createElement("span"); seg.className = "seg"; seg.dataset.index = msg.segment_index;
    seg.append(document.createTextNode(""));
  }
  seg.dataset.start = msg.start; seg.dataset.end = msg.end; seg.dataset.speaker = msg.speaker || "";
  if (msg.language_code) seg.lang = msg.language_code;
  seg.lastChild.textContent = msg.text + " ";
  if (fresh) {  // in segment order, also when a gap is filled after newer finals arrived
    const later = [...box.querySelectorAll(".seg")].find((e) => Number(e.dataset.index) > msg.segment_index);
    box.insertBefore(seg, later || interimEl());
  }
  markPara(seg); markPara(seg.nextElementSibling);
  if (!filling) {
    state.nextIndex = Math.max(state.nextIndex, msg.segment_index + 1);
    if (!msg.revision) interimEl().textContent = "";  // a revision is of an older sentence
  }
  followNewest();
}

// The transcript's language, once known, is the `lang` of the live text (screen readers
// pronounce it right); a detected one is also shown: "Language: German (detected)".
function knowLanguage(code) {
  if (!code || code === state.language) return;
  state.language = code; $("transcript").lang = code;
  if (state.detecting) $("live-language").textContent = `Language: ${languageName(code)} (detected)`;
}
function resetLanguage() {
  state.language = ""; $("transcript").removeAttribute("lang");
  state.detecting = state.picker.detects(state.choice);
  $("live-language").textContent = state.detecting ? "Language: detecting…" : "";
}

// After a reconnect the server may have made final (and stored) words this page never
// received: the resumed stream starts at a later segment. Fetch the missing ones.
async function fillGap(id, from, to) {
  try {
    const t = await (await api(`/api/transcripts/${id}`)).json();
    if (state.transcriptId !== id) return;  // another recording was started meanwhile
    for (const s of t.segments) {
      if (s.index >= from && s.index < to && !document.querySelector(`.seg[data-index="${s.index}"]`)) {
        addFinal({ segment_index: s.index, text: s.text, start: s.start, end: s.end, speaker: s.speaker }, true);
      }
    }
  } catch (err) { if (state.transcriptId === id) showMessage(`Some words said during the reconnect could not be shown: ${err.message}`); }
}

// ---- microphone -------------------------------------------------------------------------
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

function setButton(recording) {
  const b = $("record");
  b.textContent = recording ? "■ Stop" : "● Start recording";
  b.classList.toggle("recording", recording); b.setAttribute("aria-pressed", String(recording));
}

async function start() {
  showMessage("");
  if (!window.isSecureContext) { showMessage("The microphone needs a secure page: open this site over https:// or on localhost."); return; }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { showMessage("This browser cannot access a microphone (no MediaDevices API)."); return; }
  const mime = pickMime();
  if (!mime) { showMessage("This browser cannot record audio as Opus (MediaRecorder with WebM or Ogg is missing). Try a current Chrome, Edge or Firefox."); return; }
  state.opening = true;
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  } catch (err) { showMessage(micError(err)); return; } finally { state.opening = false; }
  const session = ++state.session;
  state.mime = mime; state.transcriptId = ""; state.pending = []; state.retries = 0;
  state.choice = state.picker.choice; state.picker.lock(true); resetLanguage();
  state.remember = rememberVoices(); lockRemember(true);
  state.recording = true; state.stopping = false; state.follow = true;
  setButton(true); $("jump").hidden = true;
  $("transcript").replaceChildren(); state.nextIndex = 0; state.names = {};
  meter(state.stream);
  await connect();  // the socket is open before recording starts
  if (session !== state.session || !state.recording) return;  // stopped while connecting
  state.recorder = makeRecorder();
}

// Audio sent on a socket whose stream has not answered yet (`session`) is kept with it
// (`unacked`): if the socket closes first (the service refused the stream, e.g. ABORTED
// while the previous stream still saves its last words), those chunks go again on the
// next socket, header first, instead of being lost.
function send(blob) {
  const ws = state.ws;
  if (ws && ws.readyState === WebSocket.OPEN && ws.started) {
    ws.send(blob);
    if (!ws.taken) ws.unacked.push(blob);
  } else state.pending.push(blob);  // kept while reconnecting, sent on reconnect
}
function sendStop(ws) {
  // After the recorder's last chunk (its dataavailable comes before its stop event).
  setTimeout(() => { if (ws && ws.readyState === WebSocket.OPEN && ws.started) ws.send(JSON.stringify({ type: "stop" })); }, 50);
}

// The bridge is shutting down (`leaving`): this socket's stream ends at a recorder boundary
// so the service makes every word of it final and stores it (shown as it arrives here),
// while a new recorder records for the stream that resumes the transcript: its chunks
// wait in `pending` until the socket closes and the page reconnects. Nothing is lost in
// between: the new recorder starts before the old one stops.
// A stream the service has not answered yet may still be refused (its server at its
// limit, or shutting down too): its audio is not the service's yet. It is handed over
// once `session` comes; until then the recorder sends on, each chunk kept (`unacked`),
// and if the socket closes first they all go again on the next one, header first.
function handOver(ws) {
  ws.leaving = true;
  // Stopping already: the recorder's last chunk and the stop go on this socket as usual;
  // once it closes the page resumes the transcript just to end it.
  if (ws !== state.ws || !state.recording || !ws.taken) return;
  state.ws = null;  // from now on audio waits for the next socket
  const old = state.recorder;
  state.pending = [];
  state.recorder = makeRecorder();
  if (old && old.state !== "inactive") {
    old.ondataavailable = (ev) => { if (ev.data && ev.data.size && ws.readyState === WebSocket.OPEN) ws.send(ev.data); };
    old.onstop = () => sendStop(ws);
    old.stop();
  } else sendStop(ws);
  showMessage("This connection is closing; continuing on a new one…");
}

function connect() {
  const session = state.session;
  const superseded = () => session !== state.session;
  return new Promise((resolve) => {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    ws.binaryType = "arraybuffer"; state.ws = ws; ws.unacked = [];
    if (state.recording) setStatus(state.retries ? Status.RECONNECTING : Status.CONNECTING);
    ws.onopen = () => {
      if (superseded()) { ws.close(); resolve(); return; }
      const config = { encoding: state.mime.startsWith("audio/webm") ? "webm" : "ogg", interim_results: true, title: $("title").value, speakers: true, remember_voices: state.remember };
      // A resumed transcript keeps the model and language it started with: not sent again.
      if (state.transcriptId) config.resume_transcript_id = state.transcriptId;
      else Object.assign(config, state.choice);
      ws.send(JSON.stringify({ type: "start", config }));
      ws.started = true;
      // The clock counts from the first connection and keeps counting across reconnects.
      if (state.recording) setStatus(Status.LIVE, status() === Status.CONNECTING ? Date.now() : undefined);
      ws.unacked = state.pending.splice(0);  // audio captured while disconnected
      for (const b of ws.unacked) ws.send(b);
      if (state.stopping) ws.send(JSON.stringify({ type: "stop" }));
      resolve();
    };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (!superseded()) onMessage(msg, ws);
      else if (msg.type === "end") state.onSaved();  // an earlier meeting is saved
    };
    ws.onerror = () => {};
    ws.onclose = () => {
      ws.started = false;
      if (superseded()) { resolve(); return; }
      if (state.recording || (state.stopping && !ws.ended)) {
        // A stream the service took has this recorder's header: the next needs a new one.
        // A socket never taken gives its chunks back, header first (`send`).
        if (!ws.taken && ws.unacked.length) state.pending = ws.unacked.concat(state.pending);
        else if (state.recording && ws.taken && !ws.leaving) restartRecorder();
        state.retries += 1;
        const delay = Math.min(8000, 500 * 2 ** Math.min(state.retries, 4));
        if (state.recording) setStatus(Status.RECONNECTING);  // a stopped one stays "Saving…"
        setTimeout(() => { if (!superseded()) connect(); }, delay);
      } else if (!ws.ended && status() !== Status.ERROR) {
        setStatus(Status.ERROR);
        showMessage("The connection closed before the meeting was saved; what was made final is stored.");
      }
      resolve();
    };
  });
}

function onMessage(msg, ws) {
  if (msg.type === "session") {
    const resumed = state.transcriptId === msg.transcript_id;
    ws.taken = true; ws.unacked = [];
    state.transcriptId = msg.transcript_id; state.retries = 0;
    if (state.handover) { state.handover = false; showMessage(""); }
    if (ws.leaving) handOver(ws);  // told `leaving` before this answer
    if (resumed && msg.first_segment_index > state.nextIndex) fillGap(msg.transcript_id, state.nextIndex, msg.first_segment_index);
    knowLanguage(msg.language_code);
  } else if (msg.type === "interim") setInterim(msg.text, msg.speaker, msg.language_code);
  else if (msg.type === "final") { knowLanguage(msg.language_code); addFinal(msg); }
  else if (msg.type === "speaker_names") showNames(msg.names);
  else if (msg.type === "leaving") handOver(ws);
  else if (msg.type === "error" && msg.code === "UNAVAILABLE" && (state.recording || ws.leaving)) {
    // The server is restarting: what it made final is stored; the socket closes and
    // the page reconnects, resuming the same transcript on another server.
    state.handover = true; showMessage("The transcription server is restarting; continuing on another one…");
  } else if (msg.type === "error" && msg.code === "ABORTED" && state.recording) {
    // The dropped connection's stream is still storing its last words: retry shortly.
    state.handover = true; showMessage("Reconnecting: the previous connection is still being saved…");
  } else if (msg.type === "error" && msg.code === "UNAUTHENTICATED") {
    setStatus(Status.ERROR); abandon(); state.onSignedOut();
  } else if (msg.type === "error") {
    showMessage(`The transcription service reported ${msg.code}: ${msg.message}`);
    setStatus(Status.ERROR);
    if (msg.code === "INVALID_ARGUMENT") abandon();
  } else if (msg.type === "end") {
    ws.ended = true; state.stopping = false; setInterim("");
    if (status() !== Status.ERROR) setStatus(Status.SAVED);
    state.onSaved();
  }
}

function release() {
  setButton(false); $("jump").hidden = true; state.picker.lock(false); lockRemember(false);
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  if (state.audioCtx) state.audioCtx.close();
}
// Nothing more can be sent (rejected config, signed out): no stop, no reconnect.
function abandon() {
  state.recording = false; state.stopping = false;
  const rec = state.recorder; state.recorder = null;
  if (rec && rec.state !== "inactive") rec.stop();
  release();
}
export function stop() {
  state.stopping = true; state.recording = false;
  setStatus(Status.SAVING);  // from the click on, never "Live": the last words are on their way
  if (state.recorder && state.recorder.state !== "inactive") state.recorder.stop(); else finishStop();
  release();
}
function finishStop() {
  // The recorder has flushed its last chunk; stop makes the server finalize the last words
  // (on this recording's socket, even if the next recording has started meanwhile). A
  // socket whose start is not sent yet sends stop after it (`onopen`, `state.stopping`).
  sendStop(state.ws);
}

// On sign-out the last user's live text goes, and what their stopping stream still sends
// (its last words, its end) is not shown to whoever signs in next; it is still saved.
let placeholder = null;
export function resetLive() {
  state.session += 1; state.transcriptId = ""; state.names = {}; $("title").value = "";
  $("transcript").replaceChildren(placeholder.cloneNode(true)); $("transcript").removeAttribute("lang");
  $("live-language").textContent = ""; showMessage(""); setStatus(Status.IDLE);
}

export function toggleRecording() {
  if (state.opening) return undefined;  // the microphone is still being opened
  return state.recording ? stop() : start();
}
export function initLive() {
  state.picker = picker({ model: "model", language: "language", box: "live-options", field: "model-field" });
  placeholder = $("transcript").querySelector(".placeholder").cloneNode(true);
  // A double-click is one press (its second click would stop what the first started, or
  // start a new meeting after a Stop); key presses have detail 0.
  $("record").onclick = (ev) => (ev.detail > 1 ? undefined : toggleRecording());
  $("transcript").addEventListener("scroll", onScroll, { passive: true });
  $("jump").onclick = jumpToLive;
}
