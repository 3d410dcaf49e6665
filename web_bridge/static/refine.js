// Refinement: after a stream ends or a file is uploaded the server decodes the recording
// again with its best settings. The page shows each transcript's state, and polls the
// transcripts still pending or running until they are refined (or fail).
import { getJSON } from "./util.js";

const POLL_MS = 1500;
const watched = new Set();
const listeners = new Set();
let timer = 0;

export const refining = (t) => t.refinement === "pending" || t.refinement === "running";

// "refining…" (with percent while running), "refined", "not refined: <why>", or "" for a
// transcript not queued (being recorded, or older than refinement).
export function refinementText(t) {
  if (t.refinement === "pending") return "refining…";
  if (t.refinement === "running") return `refining… ${Math.round(100 * (t.refinement_progress || 0))}%`;
  if (t.refinement === "done") return "refined";
  if (t.refinement === "failed") return `not refined: ${t.refinement_detail || "unknown reason"}`;
  return "";
}

// Called with each fresh copy of a watched transcript (the last one once it is settled).
export function onRefinement(fn) { listeners.add(fn); }

export function watch(t) {
  if (!refining(t)) return;
  watched.add(t.id);
  if (!timer) timer = setTimeout(poll, POLL_MS);
}

async function poll() {
  for (const id of [...watched]) {
    let t;
    try { t = await getJSON(`/api/transcripts/${id}`); } catch (_) { watched.delete(id); continue; }
    if (!refining(t)) watched.delete(id);
    for (const fn of listeners) fn(t);
  }
  timer = watched.size ? setTimeout(poll, POLL_MS) : 0;
}
