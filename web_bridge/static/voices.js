// Remembered voices: the Live tab's "Remember voices" switch (off by default, kept in
// localStorage, locked while recording) and, in History, the list of the voices the
// service remembers for the signed-in user, each with a button that forgets it.
import { $, api, el, getJSON, showMessage } from "./util.js";

const KEY = "transcribe.remember-voices";

export function initVoices() {
  const box = $("remember-voices");
  try { box.checked = localStorage.getItem(KEY) === "1"; } catch (_) { /* storage blocked: off */ }
  box.onchange = () => { try { localStorage.setItem(KEY, box.checked ? "1" : "0"); } catch (_) { /* kept for this page */ } };
  $("voices").addEventListener("toggle", () => { if ($("voices").open) loadVoices(); });
}
export const rememberVoices = () => $("remember-voices").checked;
export function lockRemember(on) { $("remember-voices").disabled = on; }

// The list is read when it is opened, and again when History is shown with it open.
export async function refreshVoices() { if ($("voices").open) await loadVoices(); }
export function resetVoices() { latest += 1; $("voices").open = false; $("voice-list").replaceChildren(); $("voices-status").textContent = ""; }

// Only the latest read is shown, and none made before a Forget or a sign-out answered:
// a forgotten voice must not come back (nor the last user's list).
let latest = 0;
async function loadVoices() {
  const mine = ++latest;
  showMessage("", "voices-message");
  let data;
  try { data = await getJSON("/api/voices"); } catch (err) {
    if (mine === latest) showMessage(`The remembered voices could not be listed: ${err.message}`, "voices-message");
    return;
  }
  if (mine !== latest) return;
  $("voice-list").replaceChildren(...data.voices.map(voiceItem));
  $("voices-status").textContent = data.voices.length ? "" : "No voices are remembered.";
}
function voiceItem(v) {
  const li = el("li", { dataset: { name: v.name } },
    el("span", { class: "voice-name" }, v.name),
    el("span", { class: "hint" }, `named ${new Date(v.updated).toLocaleDateString()}`),
    el("button", { type: "button", "aria-label": `Forget ${v.name}'s voice`, onclick: () => forget(v.name, li) }, "Forget"));
  return li;
}
async function forget(name, li) {
  const button = li.querySelector("button");
  button.disabled = true;  // pressed again while on its way: sent once
  showMessage("", "voices-message");
  try { await api(`/api/voices/${encodeURIComponent(name)}`, { method: "DELETE" }); } catch (err) {
    button.disabled = false; button.focus();
    showMessage(`${name}'s voice could not be forgotten: ${err.message}`, "voices-message"); return;
  }
  latest += 1;
  const next = li.nextElementSibling || li.previousElementSibling;
  li.remove();
  $("voices-status").textContent = `${name}'s voice is forgotten.`;
  (next ? next.querySelector("button") : $("voices").querySelector("summary")).focus();
}
