// Speaker names as buttons and the inline form that renames a speaker, in the live view
// and in a stored meeting alike: every name of that speaker in `scope` follows.
import { el, sendJSON, speakerClass, speakerName } from "./util.js";

// `ctx`: id() the transcript's id, names() its speaker names, saved(names) after a rename,
// scope() the element whose names follow, fail(err) shows an error.
export function speakerButton(label, ctx) {
  return el("button", { type: "button", class: `who ${speakerClass(label)}`, dataset: { speaker: label }, title: "Rename this speaker",
    onclick: (ev) => renameForm(ev.currentTarget, ctx) }, speakerName(label, ctx.names()));
}

function renameForm(button, ctx) {
  const label = button.dataset.speaker;
  const input = el("input", { type: "text", class: "who-name", maxlength: "100", value: speakerName(label, ctx.names()), "aria-label": `Name for speaker ${label}` });
  const form = el("form", { class: "rename", dataset: { speaker: label } }, input,
    el("button", { type: "submit", class: "primary" }, "Save"),
    el("button", { type: "button", onclick: () => close() }, "Cancel"));
  const close = (name) => {
    form.replaceWith(button);
    if (name !== undefined) for (const b of ctx.scope().querySelectorAll(`.who[data-speaker="${CSS.escape(label)}"]`)) b.textContent = name;
    button.focus();
  };
  form.onkeydown = (ev) => { if (ev.key === "Escape") { ev.preventDefault(); close(); } };
  form.onsubmit = (ev) => {
    ev.preventDefault();
    rename(label, input.value.trim(), ctx).then((name) => { if (name !== null) close(name); }).catch(ctx.fail);
  };
  button.replaceWith(form);
  input.focus(); input.select();
}

// Names are stored as one map: send it whole, without the label when the name is cleared.
// Only the names change in place (a player keeps its position, the live text its place).
// null if another transcript was opened before the answer: its speakers are not these.
async function rename(label, name, ctx) {
  const id = ctx.id();
  if (!id) throw new Error("the meeting is not saved yet");
  const names = { ...ctx.names() };
  if (name && name !== label) names[label] = name; else delete names[label];
  const t = await sendJSON(`/api/transcripts/${id}`, "PATCH", { speaker_names: names });
  if (ctx.id() !== id) return null;
  ctx.saved(t.speaker_names);
  return speakerName(label, t.speaker_names);
}
