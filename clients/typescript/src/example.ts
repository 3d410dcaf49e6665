// Example: stream an audio file (WAV, FLAC, MP3, WebM, Ogg), print interim text on one
// updating line and final text with times (and speaker labels with --speakers), then list
// recent transcripts and search them.
//
//   node dist/example.js [--server http://127.0.0.1:50051] [--realtime] [--json] [--speakers]
//                        [--model NAME] [--language CODE] [--search WORDS [--speaker WHO]] FILE
//   node dist/example.js [--server URL] [--json] --models    (the loaded models)
//
// The API key, if the server wants one, comes from TRANSCRIBE_API_KEY.
import { open } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { TranscribeClient, seconds } from "./client.js";

const args = process.argv.slice(2);
const option = (name: string, fallback = ""): string => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : fallback;
};
const flag = (name: string): boolean => {
  const i = args.indexOf(name);
  if (i >= 0) args.splice(i, 1);
  return i >= 0;
};
const server = option("--server", "http://127.0.0.1:50051");
const search = option("--search");
const speaker = option("--speaker", "");
const json = flag("--json");
const realtime = flag("--realtime");
const speakers = flag("--speakers");
const model = option("--model");
const languageCode = option("--language");
const listOnly = flag("--models");
const file = args[0];
if (!file && !listOnly) {
  console.error(
    "usage: example.js [--server URL] [--realtime] [--json] [--speakers] [--model NAME]" +
      " [--language CODE] [--search WORDS [--speaker WHO]] FILE | --models",
  );
  process.exit(2);
}

const clock = (t: number): string =>
  `${String(Math.floor(t / 60)).padStart(2, "0")}:${(t % 60).toFixed(2).padStart(5, "0")}`;

/** The file in 16 kB chunks; with `realtime`, at a WAV's byte rate (or 32 kB/s). */
async function* chunks(path: string, realtime: boolean): AsyncGenerator<Uint8Array> {
  const handle = await open(path);
  try {
    const started = Date.now();
    let sent = 0;
    let bytesPerSecond = 32_000;
    for (;;) {
      const { bytesRead, buffer } = await handle.read(Buffer.alloc(16_000), 0, 16_000, null);
      if (bytesRead === 0) return;
      if (sent === 0 && buffer.toString("latin1", 0, 4) === "RIFF") {
        bytesPerSecond = buffer.readUInt32LE(28) || bytesPerSecond; // the fmt chunk's byte rate
      }
      if (realtime) await sleep(Math.max(0, started + (sent / bytesPerSecond) * 1000 - Date.now()));
      sent += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

const client = new TranscribeClient({ baseUrl: server, apiKey: process.env.TRANSCRIBE_API_KEY });
if (listOnly) {
  for (const m of await client.listModels()) {
    const langs = m.languageCodes.length > 1 ? `${m.languageCodes.length} languages` : m.languageCodes.join("");
    console.log(json ? JSON.stringify({ model: m }) : `${m.name}${m.isDefault ? " (default)" : ""}  ${langs}  ${m.description}`);
  }
  process.exit(0);
}
const tty = process.stderr.isTTY;
// --speakers: label each final with its speaker ("S1", "S2", ...).
const diarizationConfig = speakers ? { enableSpeakerDiarization: true } : undefined;
const config = { title: file, model, languageCode, diarizationConfig };
for await (const r of client.transcribe(chunks(file, realtime), config)) {
  if (json) console.log(JSON.stringify(r));
  else if (r.kind === "session") console.error(`transcript ${r.transcriptId} (${r.model}, ${r.languageCode || "detecting"})`);
  else if (r.isFinal) {
    if (tty) process.stderr.write("\r\x1b[K");
    // A revision replaces its segment's earlier text: printed again, marked.
    const who = r.speaker ? `${r.speaker}: ` : "";
    console.log(`[${clock(r.start)} → ${clock(r.end)}] ${r.revision ? "(revised) " : ""}${who}${r.text}`);
  } else if (r.kind === "interim" && tty) {
    const width = (process.stderr.columns ?? 80) - 3;
    process.stderr.write(`\r\x1b[K… ${r.text.slice(-width)}`);
  }
}

const recent = await client.listTranscripts({ pageSize: 5 });
for (const t of recent.transcripts) {
  const line = { id: t.id, title: t.title, seconds: seconds(t.duration), status: t.status };
  console.log(json ? JSON.stringify({ transcript: line }) : `${t.id}  ${t.title || "(untitled)"}`);
}
if (search) {
  const found = await client.searchTranscripts(search, { speaker });
  for (const h of found.hits) {
    const who = h.speakerName || h.speakerLabel;
    const hit = { transcriptId: h.transcriptId, segmentIndex: h.segmentIndex, snippet: h.snippet, speaker: who };
    const line = `${h.transcriptId}  ${clock(seconds(h.startOffset))}  ${who ? `${who}: ` : ""}${h.snippet}`;
    console.log(json ? JSON.stringify({ hit }) : line);
  }
}
