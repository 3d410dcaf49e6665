// Live Transcribe page: the Live tab (live.js), the History tab (history.js), the tabs
// and sign-in. No inline script (CSP); every control works from the keyboard.
import { configureLive, initLive, isRecording, resetLive, showingLive, stop } from "./live.js";
import { initHistory, openTranscript, refreshHistory, resetHistory, showAll } from "./history.js";
import { initUpload, resetUpload } from "./upload.js";
import { loadModels } from "./models.js";
import { initVoices, refreshVoices, resetVoices } from "./voices.js";
import { $, onUnauthorized } from "./util.js";

const TABS = ["live", "history"];

// WAI-ARIA tabs: one Tab stop (the selected tab), arrow keys / Home / End move and select.
function showTab(name, focus = false) {
  for (const n of TABS) {
    const tab = $(`tab-${n}`), on = n === name;
    $(n).hidden = !on;
    tab.setAttribute("aria-selected", String(on)); tab.tabIndex = on ? 0 : -1; tab.classList.toggle("active", on);
    if (on && focus) tab.focus();
  }
  if (name === "history") { refreshHistory(); refreshVoices(); } else showingLive();
}
function tabKeys(ev) {
  const i = TABS.findIndex((n) => $(`tab-${n}`) === ev.target);
  if (i < 0) return;
  const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[ev.key];
  if (to === undefined) return;
  ev.preventDefault();
  showTab(TABS[(to + TABS.length) % TABS.length], true);
}

// ---- sign-in (the bridge keeps the key in an HttpOnly cookie; the page never sees it again)
function showLogin(on) {
  $("login").hidden = !on;
  $("tabs").hidden = on;
  if (on) { $("live").hidden = true; $("history").hidden = true; $("api-key").focus(); }
  else if ($("live").hidden && $("history").hidden) showTab("live");
}
async function checkSession() {
  const s = await (await fetch("/api/session")).json();
  showLogin(!s.authenticated);
  $("logout").hidden = !(s.authenticated && s.login_required);
  if (s.authenticated) await loadModels();  // the selectors, once the service answers us
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
  if (isRecording()) stop();
  await fetch("/api/logout", { method: "POST" });
  resetLive(); resetHistory(); resetVoices(); resetUpload();
  await checkSession();
}

window.addEventListener("DOMContentLoaded", async () => {
  let config = {};
  try { config = await (await fetch("/api/config")).json(); } catch (_) { /* defaults */ }
  const chunkMs = config.chunk_ms || 250;
  onUnauthorized(() => showLogin(true));
  configureLive({
    chunkMs,
    onSaved: () => { if (!$("history").hidden) refreshHistory(); },
    onSignedOut: () => showLogin(true),
  });
  initLive(); initHistory(); initVoices();
  // An uploaded file appears at the top of all meetings, opened, its refinement followed;
  // unless the user went on to something else meanwhile (its status line says it is stored).
  initUpload({ limit: config.max_upload_bytes, stored: async (t, idle) => { if (!idle) return; $("search").value = ""; await showAll(); await openTranscript(t.id); } });
  for (const n of TABS) $(`tab-${n}`).onclick = () => showTab(n);
  $("tabs").addEventListener("keydown", tabKeys);
  $("login-form").onsubmit = login;
  $("logout").onclick = logout;
  await checkSession();
});
