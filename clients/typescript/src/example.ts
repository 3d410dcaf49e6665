// Example: stream an audio file (WAV, FLAC, WebM, Ogg...), print interim and final results,
// then list transcripts and search them.
//   node dist/example.js --server http://127.0.0.1:50051 FILE [--search WORDS] [--json]
import { readFile } from "node:fs/promises";
import { Transcriber } from "./client.js";

const args = process.argv.slice(2);
const opt = (name: string, fallback = ""): string => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : fallback;
};
const server = opt("--server", "http://127.0.0.1:50051");
const search = opt("--search");
const json = args.includes("--json");
const file = args.filter((a) => a !== "--json")[0];

const client = new Transcriber({ baseUrl: server, apiKey: process.env.TRANSCRIBE_API_KEY });
const data = await readFile(file);
const chunks = function* () {
  for (let i = 0; i < data.length; i += 16000) yield data.subarray(i, i + 16000);
};
for await (const r of client.transcribe(chunks())) {
  if (json) console.log(JSON.stringify(r));
  else if (r.transcriptId) console.error(`transcript ${r.transcriptId}`);
  else if (r.isFinal) console.log(`[${r.start.toFixed(2)}] ${r.text}`);
  else process.stderr.write(`\r… ${r.text}`);
}
const list = await client.transcripts.listTranscripts({ pageSize: 5 });
if (!json) for (const t of list.transcripts) console.log(`${t.id}  ${t.title || "(untitled)"}`);
if (search) {
  const found = await client.transcripts.searchTranscripts({ query: search });
  for (const h of found.hits) console.log(json ? JSON.stringify({ hit: h.transcriptId, segment: h.segmentIndex }) : `${h.transcriptId} ${h.snippet}`);
}
