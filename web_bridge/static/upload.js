// "Upload a recording": a file picker button, or a file dropped on the History panel. The
// file goes to the bridge as the request body (XMLHttpRequest, for its upload progress);
// the stored transcript is then refined, and its progress shown until it is done.
import { $, signedOut } from "./util.js";
import { onRefinement, refinementText, watch } from "./refine.js";
import { picker } from "./models.js";

let maxBytes = Infinity;
let onStored = () => {};
let choose = null;  // the model and language selectors
let tracking = null;  // { id, name } of the last upload, whose refinement the status follows
let busy = null;  // the XMLHttpRequest of the upload running
const waiting = [];  // files chosen or dropped while one uploads: sent in turn after it
// The user's key presses and clicks, counted: if they pressed or clicked anything while a
// file uploaded (typing a search, reading another meeting), the stored file must not
// disturb what they went on to; if not, it opens.
let acted = 0;

// A failure stays shown until the user starts a new batch of files: the next queued file's
// progress must not wipe out why the last one was refused.
function failed(text) {
  const line = document.createElement("p");
  line.textContent = text;
  $("upload-failures").append(line);
}
function say(text, progress = null) {
  $("upload-status").textContent = text;
  const bar = $("upload-progress");
  bar.hidden = progress === null;
  if (progress !== null) bar.value = progress;
}
const baseName = (name) => name.replace(/\.[^.]+$/, "") || name;
const mb = (n) => `${(n / 1048576).toFixed(n < 10485760 ? 1 : 0)} MB`;

// A file the user chose or dropped: a new batch if nothing is uploading or waiting.
function add(file) {
  if (!busy && !waiting.length) $("upload-failures").replaceChildren();
  send(file);
}

function send(file) {
  if (busy) { waiting.push(file); return; }
  if (file.size > maxBytes) { failed(`${file.name} is ${mb(file.size)}; this server takes files up to ${mb(maxBytes)}.`); next(); return; }
  if (!file.size) { failed(`${file.name} is empty.`); next(); return; }
  tracking = null;  // the status line is this upload's now
  const seen = acted;
  $("upload").disabled = true;
  const xhr = new XMLHttpRequest(); busy = xhr;
  const { model, language_code: language } = choose.choice;
  const query = new URLSearchParams({ title: baseName(file.name) });
  if (model) query.set("model", model);
  if (language) query.set("language", language);
  xhr.open("POST", `/api/upload?${query}`);
  say(`Uploading ${file.name}… 0%`, 0);
  xhr.upload.onprogress = (ev) => {
    if (!ev.lengthComputable) return;
    const share = ev.loaded / ev.total;
    $("upload-progress").value = share;
    $("upload-status").textContent = `Uploading ${file.name}… ${Math.floor(100 * share)}%`;
  };
  xhr.onload = () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status === 401) signedOut();
    if (xhr.status < 200 || xhr.status >= 300 || !body) {
      failed(`Upload of ${file.name} failed: ${(body && body.error && body.error.message) || `HTTP ${xhr.status}`}`);
      say("");
      next();
      return;
    }
    tracking = { id: body.id, name: file.name };
    say(`${file.name}: uploaded, ${refinementText(body) || "stored"}`);
    watch(body);
    onStored(body, acted === seen);
    next();
  };
  xhr.onerror = () => { failed(`Upload of ${file.name} failed: the connection was lost.`); say(""); next(); };
  xhr.send(file);
}
function next() {
  busy = null; $("upload").disabled = false;
  if (waiting.length) send(waiting.shift());
}

// On sign-out: an upload running is cancelled, and nothing of it is left shown.
export function resetUpload() {
  waiting.length = 0; tracking = null;
  if (busy) busy.abort();
  next(); say(""); $("upload-failures").replaceChildren();
}

const hasFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes("Files");

export function initUpload({ limit, stored }) {
  for (const type of ["keydown", "pointerdown"]) document.addEventListener(type, () => { acted += 1; }, true);
  if (limit) maxBytes = limit;
  onStored = stored;
  choose = picker({ model: "upload-model", language: "upload-language", box: "upload-options", field: "upload-model-field" });
  const input = $("upload-file");
  $("upload").onclick = () => input.click();
  input.onchange = () => { const f = input.files[0]; input.value = ""; if (f) add(f); };
  const zone = $("history");
  zone.addEventListener("dragover", (ev) => { if (hasFiles(ev)) { ev.preventDefault(); zone.classList.add("dropping"); } });
  zone.addEventListener("dragleave", (ev) => { if (!zone.contains(ev.relatedTarget)) zone.classList.remove("dropping"); });
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault(); zone.classList.remove("dropping");
    const f = ev.dataTransfer.files[0]; if (f) add(f);
  });
  // A file dropped anywhere else must not replace the page (the browser would open it).
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (ev) => { if (hasFiles(ev)) ev.preventDefault(); });
  onRefinement((t) => {
    if (tracking && t.id === tracking.id) say(`${tracking.name}: ${refinementText(t)}`, t.refinement === "running" ? t.refinement_progress : null);
  });
}
