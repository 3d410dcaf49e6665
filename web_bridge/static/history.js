// The History tab: pages of meetings, search hits with their sentence, a tag filter, and
// the meeting view (read, replay from any passage, edit, export, delete).
import { $, api, el, fmt, getJSON, marked, sendJSON, showMessage, speakerClass, startsPara } from "./util.js";
import { speakerButton } from "./speakers.js";
import { onRefinement, refinementText, watch } from "./refine.js";
import { languageName } from "./models.js";

const PAGE = 50;
// What the list shows, so an edit or a "More" keeps the user's place: all meetings, one
// tag's, or a search's hits; `token` is the next page's.
// A search may be limited to one speaker (`speaker`: a name or a label), chosen among the
// `speakers` its unlimited results showed.
const view = { mode: "all", q: "", tag: "", token: "", speaker: "", speakers: [] };
let current = null;  // the open meeting: { id, t, audio }
const fail = (what) => (err) => showMessage(`${what} failed: ${err.message}`, "history-message");

// ---- the list ------------------------------------------------------------------------------
function itemButton(id, title, meta, extra = {}) {
  const b = el("button", { type: "button", class: "item", dataset: { id, ...extra } },
    el("span", { class: "title" }, title), el("span", { class: "meta" }, meta));
  if (current && current.id === id) b.setAttribute("aria-current", "true");
  return b;
}
// The refinement state after a meeting's other facts; updated in place while it changes.
function refineNote(t, sep = " · ") {
  const text = refinementText(t);
  return el("span", { class: `refine ${t.refinement}`, dataset: { refineFor: t.id } }, text && `${sep}${text}`);
}
function meetingItem(t) {
  const tags = t.tags.length ? ` · ${t.tags.map((x) => `#${x}`).join(" ")}` : "";
  const meta = document.createDocumentFragment();
  meta.append(`${new Date(t.created).toLocaleString()} · ${fmt(t.duration)} · ${t.status}${tags}`, refineNote(t));
  watch(t);
  const b = itemButton(t.id, t.title || "Untitled meeting", meta);
  b.onclick = () => openTranscript(t.id).catch(fail("Opening the meeting"));
  return el("li", {}, b);
}
function hitItem(h) {
  if (h.kind === "transcript") {  // the title or tags matched: open the meeting at its start
    const b = itemButton(h.transcript_id, h.title || "Untitled meeting", marked(h.snippet, h.highlights));
    b.onclick = () => openTranscript(h.transcript_id).catch(fail("Opening the meeting"));
    return el("li", { class: "hit title-hit" }, b);
  }
  const b = itemButton(h.transcript_id, `${h.title || "Untitled meeting"} · ${fmt(h.start)}`, hitMeta(h, h.snippet, h.highlights), { index: h.segment_index });
  b.onclick = () => openTranscript(h.transcript_id, { index: h.segment_index, at: h.start }).catch(fail("Opening the meeting"));
  return el("li", { class: "hit" }, b);
}
// Who said it ("Alice: ", in the speaker's colour), then the text with its matches marked.
const who = (h) => h.speaker_name || h.speaker_label;
function hitMeta(h, text, ranges) {
  const f = document.createDocumentFragment();
  if (who(h)) f.append(el("span", { class: `who ${speakerClass(h.speaker_label)}` }, `${who(h)}: `));
  f.append(marked(text, ranges));
  return f;
}
function speakerFilter() {
  const select = el("select", { id: "search-speaker", "aria-label": "Said by",
    onchange: () => { view.speaker = select.value; loadList().then((items) => { if (items) $("search-speaker").focus(); }).catch(fail("Search")); } },
  el("option", { value: "" }, "anyone"), ...view.speakers.map((s) => el("option", { value: s }, s)));
  select.value = view.speaker;
  return el("label", {}, "Said by ", select);
}
function caption() {
  const c = $("list-caption"); c.replaceChildren();
  if (view.mode === "tag") {
    const all = el("button", { type: "button", class: "link", onclick: () => showAll() }, "Show all meetings");
    c.append(`Meetings tagged “${view.tag}” · `, all);
  } else if (view.mode === "search") {
    const all = el("button", { type: "button", class: "link", onclick: () => { $("search").value = ""; showAll(); } }, "Clear search");
    c.append(`Results for ${/^".*"$/.test(view.q) ? view.q : `“${view.q}”`} · `);
    if (view.speakers.length) c.append(speakerFilter(), " · ");
    c.append(all);
  }
  c.hidden = view.mode === "all";
}

// Fetches the next page of the current view (the first if `fresh`) and appends it.
// Only the latest request's answer is shown: a search typed while the meeting list is still
// loading must not be overwritten by (or read as) the list that answers after it. Returns
// the items added, or null for an answer superseded by a newer request. "More" pressed
// while the list is being read afresh (`replacing`) is ignored: its page is the old list's.
let latest = 0, replacing = 0;
export async function loadList(fresh = true) {
  if (!fresh && replacing) return null;
  const mine = ++latest;
  if (fresh) replacing = mine;
  const search = view.mode === "search";
  const token = fresh ? "" : view.token;  // view.token changes only with an answer shown
  const page = token ? `&page_token=${encodeURIComponent(token)}` : "";
  const url = search
    ? `/api/search?q=${encodeURIComponent(view.q)}&speaker=${encodeURIComponent(view.speaker)}${page}`
    : `/api/transcripts?page_size=${PAGE}${view.mode === "tag" ? `&tag=${encodeURIComponent(view.tag)}` : ""}${page}`;
  showMessage("", "history-message");
  const data = await getJSON(url).catch((e) => { if (mine === latest) { replacing = 0; throw e; } return null; });
  if (mine !== latest) return null;
  replacing = 0;
  const ul = $("list");
  const on = fresh && ul.contains(document.activeElement) ? document.activeElement.closest("button.item") : null;
  if (fresh) ul.replaceChildren();
  const items = search ? data.hits.map(hitItem) : data.transcripts.map(meetingItem);
  if (fresh && !items.length) ul.append(el("li", { class: "placeholder" }, search ? "Nothing found." : "No meetings yet."));
  ul.append(...items);
  if (on) refocus(ul, on);
  view.token = data.next_page_token || "";
  if (search && !view.speaker) {
    view.speakers = [...new Set([...view.speakers, ...data.hits.map(who).filter(Boolean)])];
  }
  $("more").hidden = !view.token;
  $("more").textContent = search ? "More results" : "More meetings";
  caption();
  if (search) addContext(data.hits, items);
  return items;
}
// A list read again (a meeting saved, a filter) is rebuilt: the keyboard stays on the
// entry it was on, else goes to the first one, instead of falling to the page.
function refocus(ul, on) {
  const all = [...ul.querySelectorAll("button.item")];
  const same = all.find((b) => b.dataset.id === on.dataset.id && b.dataset.index === on.dataset.index);
  (same || all[0] || $("search")).focus();
}
async function more() {
  const items = await loadList(false);
  if (items && items.length) items[0].querySelector("button").focus();  // keyboard users go on from there
}
// Coming back to History shows the same view (a search stays a search), refreshed.
export function refreshHistory() { return loadList().catch(fail("Loading meetings")); }
export function showAll() { view.mode = "all"; return loadList().catch(fail("Loading meetings")); }
function showTag(tag) { view.mode = "tag"; view.tag = tag; $("search").value = ""; return loadList().catch(fail("Loading meetings")); }
async function runSearch(ev) {
  ev.preventDefault();
  const q = $("search").value.trim();
  if (!q) return showAll();
  view.mode = "search"; view.q = q; view.speaker = ""; view.speakers = [];
  return loadList().catch(fail("Search"));
}

// A live recording's finals are a few words each: show the hit inside its sentence (the
// segments before it back to the sentence start, and after it to the sentence end).
const SIDE_WORDS = 25;
function context(segs, index, snippet) {
  const i = segs.findIndex((s) => s.index === index);
  if (i < 0) return null;
  // A match across the seam of two segments comes as the pair, on the first one's index.
  const pair = (x) => x >= 0 && x + 1 < segs.length && snippet === `${segs[x].text} ${segs[x + 1].text}`;
  let a = i, b = i;
  if (snippet === segs[i].text) a = b = i;
  else if (pair(i)) b = i + 1;
  else if (pair(i - 1)) a = i - 1;
  else return null;  // an excerpt of a long segment: it is its own context
  const before = []; let words = 0;
  for (let j = a - 1; j >= 0 && !startsPara(segs[j], segs[j + 1]) && words < SIDE_WORDS; j -= 1) {
    before.unshift(segs[j].text); words += segs[j].text.split(/\s+/).length;
  }
  const after = []; words = 0;
  for (let j = b + 1; j < segs.length && !startsPara(segs[j - 1], segs[j]) && words < SIDE_WORDS; j += 1) {
    after.push(segs[j].text); words += segs[j].text.split(/\s+/).length;
  }
  return { before: before.length ? `${before.join(" ")} ` : "", after: after.length ? ` ${after.join(" ")}` : "" };
}
async function addContext(hits, items) {
  const ids = [...new Set(hits.filter((h) => h.kind !== "transcript").map((h) => h.transcript_id))];
  const loaded = new Map(await Promise.all(ids.map(async (id) => [id, await getJSON(`/api/transcripts/${id}`).catch(() => null)])));
  hits.forEach((h, n) => {
    if (h.kind === "transcript") return;
    const t = loaded.get(h.transcript_id);
    const c = t && context(t.segments, h.segment_index, h.snippet);
    if (!c) return;
    const shift = Array.from(c.before).length;
    items[n].querySelector(".meta").replaceChildren(hitMeta(h, c.before + h.snippet + c.after, h.highlights.map(([s, e]) => [s + shift, e + shift])));
  });
}

// ---- the meeting ---------------------------------------------------------------------------
function tagChips(t) {
  const box = el("div", { class: "tags", role: "group", "aria-label": "Tags" });  // a label needs a role
  for (const tag of t.tags) {
    box.append(el("button", { type: "button", class: "chip", title: `Show meetings tagged ${tag}`, onclick: () => showTag(tag) }, tag));
  }
  return box;
}
function editForm(t) {
  const title = el("input", { id: "edit-title", type: "text", maxlength: "200", value: t.title });
  const tags = el("input", { id: "edit-tags", type: "text", value: t.tags.join(", ") });
  const form = el("form", { class: "edit", hidden: true },
    el("label", { for: "edit-title" }, "Title"), title,
    el("label", { for: "edit-tags" }, "Tags, comma separated"), tags,
    el("div", { class: "row" }, el("button", { type: "submit", class: "primary" }, "Save"),
      el("button", { type: "button", onclick: () => closeEdit() }, "Cancel")));
  form.onsubmit = (ev) => { ev.preventDefault(); saveEdit(title.value, tags.value).catch(fail("Saving")); };
  return form;
}
function closeEdit() { $("detail").querySelector("form.edit").hidden = true; $("edit").setAttribute("aria-expanded", "false"); $("edit").focus(); }
// An edit changes the heading, the tags and the list entry in place: the player keeps its
// position and the list (search hits, a tag's meetings, pages loaded) stays as it was.
// If another meeting was opened before the answer, only the edited one's list entry changes.
async function saveEdit(title, tags) {
  const id = current.id;
  const t = await sendJSON(`/api/transcripts/${id}`, "PATCH", { title, tags: tags.split(",").map((x) => x.trim()).filter(Boolean) });
  for (const b of $("list").querySelectorAll(`button.item[data-id="${id}"]`)) {
    const old = b.querySelector(".title").textContent;
    b.querySelector(".title").textContent = (t.title || "Untitled meeting") + (b.dataset.index !== undefined ? old.slice(old.lastIndexOf(" · ")) : "");
  }
  if (!current || current.id !== id) return;
  current.t = { ...current.t, title: t.title, tags: t.tags };
  $("detail-title").textContent = t.title || "Untitled meeting";
  $("detail").querySelector(".tags").replaceWith(tagChips(t));
  closeEdit();
}
async function remove(button) {
  if (!confirm("Delete this meeting, its text and its recording?")) return;
  const id = current.id;
  button.disabled = true;  // pressed again while on its way: sent once
  try { await api(`/api/transcripts/${id}`, { method: "DELETE" }); } catch (err) { button.disabled = false; button.focus(); throw err; }
  for (const b of $("list").querySelectorAll(`button.item[data-id="${id}"]`)) b.closest("li").remove();
  if (!current || current.id !== id) return;  // another meeting was opened meanwhile: it stays
  $("detail").replaceChildren(el("p", { class: "placeholder" }, "The meeting was deleted."));
  current = null;
  ($("list").querySelector("button.item") || $("search")).focus();
}

// Each paragraph starts with its speaker's name: a button that renames the speaker.
const speakers = {
  id: () => (current ? current.id : ""), names: () => current.t.speaker_names || {}, scope: () => $("detail"),
  saved: (names) => { current.t = { ...current.t, speaker_names: names }; }, fail: fail("Renaming the speaker"),
};

// Paragraphs of segments; with a recording each segment is a button (one Tab stop for all,
// arrow keys move between them) that plays the recording from its start.
function segments(t, audio) {
  const box = el("div", { class: "segments", role: "group", "aria-label": "Transcript" });
  if (t.language_code) box.lang = t.language_code;  // screen readers pronounce it right
  if (audio) box.setAttribute("aria-describedby", "seg-hint");
  let para = null, prev = null;
  for (const s of t.segments) {
    if (startsPara(prev, s)) {
      para = el("p", s.speaker ? { class: speakerClass(s.speaker), dataset: { speaker: s.speaker } } : {}, el("span", { class: "t" }, `${fmt(s.start)} `));
      if (s.speaker) para.append(speakerButton(s.speaker, speakers));
      box.append(para);
    }
    const span = el("span", { class: "s", dataset: { index: s.index, start: s.start } }, `${s.text} `);
    if (audio) { span.setAttribute("role", "button"); span.tabIndex = -1; }
    para.append(span); prev = s;
  }
  const first = box.querySelector(".s[role=button]");
  if (first) first.tabIndex = 0;
  if (!audio) return box;
  const seek = (span) => { audio.currentTime = Number(span.dataset.start); audio.play().catch(() => {}); };
  box.onclick = (ev) => { const s = ev.target.closest(".s"); if (s) { rove(box, s); seek(s); } };
  box.onkeydown = (ev) => {
    const s = ev.target.closest(".s"); if (!s) return;
    const all = [...box.querySelectorAll(".s")]; const i = all.indexOf(s);
    const to = { ArrowDown: i + 1, ArrowRight: i + 1, ArrowUp: i - 1, ArrowLeft: i - 1, PageDown: i + 10, PageUp: i - 10, Home: 0, End: all.length - 1 }[ev.key];
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); seek(s); }
    else if (to !== undefined) { ev.preventDefault(); rove(box, all[Math.max(0, Math.min(all.length - 1, to))]).focus(); }
  };
  return box;
}
function rove(box, span) {
  for (const s of box.querySelectorAll(".s[tabindex='0']")) s.tabIndex = -1;
  span.tabIndex = 0;
  return span;
}

// Opens a meeting; from a search hit (`index`, `at`) the matched segment is highlighted,
// scrolled to and focused, and the player is set to its start. Of meetings chosen one after
// another, the last chosen is shown, whichever answers last (a long one loads slower).
let opening = 0;
export async function openTranscript(id, hit = null) {
  const mine = ++opening;
  const t = await getJSON(`/api/transcripts/${id}`).catch((e) => { if (mine === opening) throw e; return null; });
  if (mine !== opening) return;
  current = { id, t, audio: null };
  for (const b of $("list").querySelectorAll("button.item")) {
    if (b.dataset.id === id) b.setAttribute("aria-current", "true"); else b.removeAttribute("aria-current");
  }
  const d = $("detail"); d.replaceChildren();
  const h = el("h2", { id: "detail-title", tabindex: "-1" }, t.title || "Untitled meeting");
  const refine = el("p", { id: "detail-refine", class: `refine ${t.refinement}`, role: "status" }, refinementText(t));
  watch(t);
  const actions = el("div", { class: "actions" });
  const edit = el("button", { type: "button", id: "edit", "aria-expanded": "false" }, "Edit title and tags");
  actions.append(edit);
  for (const f of ["txt", "srt", "vtt", "json"]) {
    actions.append(el("a", { class: "button export", href: `/api/transcripts/${id}/export?format=${f}`, download: "", "aria-label": `Export as ${f.toUpperCase()}` }, f.toUpperCase()));
  }
  if (t.recording) actions.append(el("a", { class: "button", href: `/api/transcripts/${id}/recording`, download: "" }, "Download audio"));
  actions.append(el("button", { type: "button", class: "danger", onclick: (ev) => remove(ev.currentTarget).catch(fail("Deleting")) }, "Delete"));
  const form = editForm(t);
  edit.onclick = () => { form.hidden = !form.hidden; edit.setAttribute("aria-expanded", String(!form.hidden)); if (!form.hidden) $("edit-title").focus(); };
  const about = [t.language_code && `Language: ${languageName(t.language_code)}`, t.model && `Model: ${t.model}`].filter(Boolean);
  d.append(h, refine, el("p", { id: "detail-language", class: "language" }, about.join(" · ")), tagChips(t), actions, form);
  let audio = null;
  if (t.recording) {
    audio = el("audio", { controls: true, preload: "metadata", src: `/api/transcripts/${id}/recording`, "aria-label": "Recording" });
    d.append(audio, el("p", { id: "seg-hint", class: "hint" }, "Click a passage, or press Enter on it (arrow keys move between passages), to play from there."));
  }
  current.audio = audio;
  const segs = segments(t, audio);
  d.append(segs);
  const target = hit && segs.querySelector(`.s[data-index="${hit.index}"]`);
  if (target) {
    target.classList.add("hit");
    if (audio) rove(segs, target);
    target.scrollIntoView({ block: "center" });
    (audio ? target : h).focus({ preventScroll: true });
  } else h.focus();
  if (audio && hit && hit.at) {
    const at = target ? Number(target.dataset.start) : hit.at;
    if (audio.readyState >= 1) audio.currentTime = at;
    else audio.addEventListener("loadedmetadata", () => { audio.currentTime = at; }, { once: true });
  }
}

// A fresh copy of a transcript being refined: its notes change in the list and the open
// meeting; new text replaces the open meeting's passages, the player keeping its place.
function refined(t) {
  for (const note of $("list").querySelectorAll(`.refine[data-refine-for="${t.id}"]`)) note.replaceWith(refineNote(t));
  if (!current || current.id !== t.id) return;
  const note = $("detail-refine");
  note.className = `refine ${t.refinement}`; note.textContent = refinementText(t);
  if (JSON.stringify(t.segments) === JSON.stringify(current.t.segments)) return;
  if (!current.audio && t.recording) { openTranscript(t.id).catch(fail("Opening the meeting")); return; }
  const old = $("detail").querySelector(".segments");
  const on = old.contains(document.activeElement) ? document.activeElement : null;  // the keyboard's
  const form = old.querySelector("form.rename");  // a speaker being renamed
  const box = segments(t, current.audio);
  const who = on && on.matches(".who") ? sameName(old, box, on) : null;
  old.replaceWith(box);
  current.t = { ...current.t, segments: t.segments, segment_count: t.segment_count, duration: t.duration };
  // The rename form (with what was typed) takes the place of the same name in the new
  // passages, so the refined text does not end the rename.
  const place = form && sameName(old, box, form);
  if (place) place.replaceWith(form);
  const again = on && on.dataset.index !== undefined && box.querySelector(`.s[data-index="${on.dataset.index}"]`);
  if (again) { if (current.audio) rove(box, again); again.focus({ preventScroll: true }); }
  else if (on) (on.isConnected ? on : who || $("detail-title")).focus({ preventScroll: true });
}
// A speaker's name (or its rename form) in the old passages: the same name in the new ones
// (the nth of that speaker's, else the first), or null.
function sameName(old, box, e) {
  const who = `.who[data-speaker="${CSS.escape(e.dataset.speaker)}"]`;
  const n = [...old.querySelectorAll(`${who}, form.rename`)].indexOf(e);
  const spots = box.querySelectorAll(who);
  return spots[n] || spots[0] || null;
}

// On sign-out: answers still on their way (the last user's) are dropped too.
export function resetHistory() {
  latest += 1; opening += 1; replacing = 0;
  current = null; view.mode = "all"; $("list").replaceChildren(); $("detail").replaceChildren();
  $("search").value = ""; caption();
}
export function initHistory() {
  // A phone turned sideways (or a resized window) reflows the page: keep the passage the
  // user is on where they can see it.
  window.addEventListener("resize", () => {
    const on = document.activeElement;
    if (on && on.closest("#detail .s")) on.scrollIntoView({ block: "center" });
  });
  $("search-form").onsubmit = runSearch;
  $("more").onclick = () => more().catch(fail("Loading more"));
  onRefinement(refined);
}
