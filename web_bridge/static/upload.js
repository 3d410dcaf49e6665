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

function say(text, progress = null) {
  $("upload-status").textContent = text;
  const bar = $("upload-progress");
  bar.hidden = progress === null;
  if (progress !== null) bar.value = progress;
}
const baseName = (name) => name.replace(/\.[^.]+$/, "") || name;
const mb = (n) => `${(n / 1048576).toFixed(n < 10485760 ? 1 : 0)} MB`;

export function send(file) {
  if (file.size > maxBytes) { say(`${file.name} is ${mb(file.size)}; this server takes files up to ${mb(maxBytes)}.`); return; }
  if (!file.size) { say(`${file.name} is empty.`); return; }
  $("upload").disabled = true;
  const xhr = new XMLHttpRequest();
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
    $("upload").disabled = false;
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status === 401) signedOut();
    if (xhr.status < 200 || xhr.status >= 300 || !body) {
      say(`Upload of ${file.name} failed: ${(body && body.error && body.error.message) || `HTTP ${xhr.status}`}`);
      return;
    }
    tracking = { id: body.id, name: file.name };
    say(`${file.name}: uploaded, ${refinementText(body) || "stored"}`);
    watch(body);
    onStored(body);
  };
  xhr.onerror = () => { $("upload").disabled = false; say(`Upload of ${file.name} failed: the connection was lost.`); };
  xhr.send(file);
}

const hasFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes("Files");

export function initUpload({ limit, stored }) {
  if (limit) maxBytes = limit;
  onStored = stored;
  choose = picker({ model: "upload-model", language: "upload-language", box: "upload-options", field: "upload-model-field" });
  const input = $("upload-file");
  $("upload").onclick = () => input.click();
  input.onchange = () => { const f = input.files[0]; input.value = ""; if (f) send(f); };
  const zone = $("history");
  zone.addEventListener("dragover", (ev) => { if (hasFiles(ev)) { ev.preventDefault(); zone.classList.add("dropping"); } });
  zone.addEventListener("dragleave", (ev) => { if (!zone.contains(ev.relatedTarget)) zone.classList.remove("dropping"); });
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault(); zone.classList.remove("dropping");
    const f = ev.dataTransfer.files[0]; if (f) send(f);
  });
  // A file dropped anywhere else must not replace the page (the browser would open it).
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (ev) => { if (hasFiles(ev)) ev.preventDefault(); });
  onRefinement((t) => {
    if (tracking && t.id === tracking.id) say(`${tracking.name}: ${refinementText(t)}`, t.refinement === "running" ? t.refinement_progress : null);
  });
}
