// The model and language selectors (Live, and the upload on History): the models the
// service loaded (GET /api/models), each model's languages by name (Intl.DisplayNames, so
// there is no table to keep), "Auto-detect" first on a model that detects the language.
// The choice is remembered in localStorage: one model for both selectors, and one
// language per model.
import { $, el } from "./util.js";

const AUTO = "auto";
const KEY_MODEL = "transcribe.model";
const keyLanguage = (model) => `transcribe.language.${model}`;
const store = {
  get: (k) => { try { return localStorage.getItem(k) || ""; } catch (_) { return ""; } },
  set: (k, v) => { try { localStorage.setItem(k, v); } catch (_) { /* private mode */ } },
};

// Names in the page's own language (English), as the rest of its words, so a screen
// reader pronounces them right.
let displayNames = null;
try { displayNames = new Intl.DisplayNames([document.documentElement.lang || "en"], { type: "language" }); } catch (_) { /* old browser: codes */ }
// "German" for "de"; the code itself when the browser has no name for it.
export function languageName(code) {
  if (!code) return "";
  try { return (displayNames && displayNames.of(code)) || code; } catch (_) { return code; }
}

let models = [];
const pickers = [];

// One pair of selectors: `ids` names the model <select>, the language <select>, the box
// holding both (hidden until there is a choice) and the model's field (hidden with one model).
class Picker {
  constructor(ids) {
    this.ids = ids; this.locked = false;
    $(ids.model).onchange = () => { store.set(KEY_MODEL, $(ids.model).value); this.fillLanguages(); sync(this); };
    $(ids.language).onchange = () => { store.set(keyLanguage(this.modelInfo().name), $(ids.language).value); sync(this); };
  }
  modelInfo() { return models.find((m) => m.name === $(this.ids.model).value) || models[0]; }
  fill() {
    $(this.ids.box).hidden = !models.length;
    if (!models.length) return;
    $(this.ids.field).hidden = models.length < 2;
    const sel = $(this.ids.model);
    sel.replaceChildren(...models.map((m) => el("option", { value: m.name, title: m.description }, m.name)));
    const saved = store.get(KEY_MODEL);
    sel.value = models.some((m) => m.name === saved) ? saved : (models.find((m) => m.is_default) || models[0]).name;
    this.fillLanguages();
    // One model that does one language (tiny.en alone): nothing to choose, nothing shown.
    $(this.ids.box).hidden = models.length < 2 && $(this.ids.language).options.length < 2;
  }
  fillLanguages() {
    const m = this.modelInfo();
    $(this.ids.model).title = m.description;  // e.g. "Whisper base, multilingual (99 languages)"
    const sel = $(this.ids.language);
    const named = m.language_codes.map((c) => [c, languageName(c)]).sort((a, b) => a[1].localeCompare(b[1]));
    sel.replaceChildren(
      ...(m.detects_language ? [el("option", { value: AUTO }, "Auto-detect")] : []),
      ...named.map(([c, n]) => el("option", { value: c }, n)),
    );
    const saved = store.get(keyLanguage(m.name));
    const fallback = m.detects_language ? AUTO : (m.language_codes.includes("en") ? "en" : m.language_codes[0] || "");
    sel.value = [...sel.options].some((o) => o.value === saved) ? saved : fallback;
    this.lock(this.locked);
  }
  // While recording the choice cannot change (the stream has its model and language).
  lock(on) {
    this.locked = on;
    $(this.ids.model).disabled = on;
    $(this.ids.language).disabled = on || $(this.ids.language).options.length < 2;
  }
  // Whether `choice` (a `.choice` of this picker) leaves the language to be detected.
  detects(choice) {
    const m = models.find((x) => x.name === choice.model);
    return !!m && m.detects_language && !choice.language_code;
  }
  // What to send: the model's name ("" when unknown: the service's default) and the
  // language code ("" for auto-detect).
  get choice() {
    if (!models.length) return { model: "", language_code: "" };
    const lang = $(this.ids.language).value;
    return { model: $(this.ids.model).value, language_code: lang === AUTO ? "" : lang };
  }
}
// A choice made in one selector is the other's too (unless that one is in use).
function sync(from) {
  for (const p of pickers) {
    if (p === from || p.locked) continue;
    $(p.ids.model).value = $(from.ids.model).value;
    p.fillLanguages();
  }
}

export function picker(ids) { const p = new Picker(ids); pickers.push(p); p.fill(); return p; }

// (Re)loads the catalogue, after sign-in too; a service without ListModels, or an error,
// hides the selectors and the streams get the service's defaults.
export async function loadModels() {
  try {
    const r = await fetch("/api/models");
    models = r.ok ? ((await r.json()).models || []) : [];
  } catch (_) { models = []; }
  for (const p of pickers) p.fill();
  return models;
}
