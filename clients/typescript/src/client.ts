// A small typed wrapper over the generated transcribe.v1 client (src/gen, never edited):
// one place for the transport policy, the config sent first, plain typed results.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { WordInfo } from "./gen/transcribe/v1/common_pb.js";
import {
  AudioEncoding,
  SpeechEventType,
  StreamingTranscribeRequestSchema,
  StreamingTranscriptionConfigSchema,
  TranscriptionService,
  type StreamingTranscribeRequest,
  type StreamingTranscribeResponse,
} from "./gen/transcribe/v1/streaming_pb.js";
import {
  ExportFormat,
  TranscriptService,
  type ListTranscriptsResponse,
  type SearchTranscriptsResponse,
  type Transcript,
  type Voice,
} from "./gen/transcribe/v1/transcripts_pb.js";

export { AudioEncoding, type Transcript, type Voice };

export type ResultKind =
  | "session" | "speech_begin" | "speech_end" | "interim" | "final" | "speaker_names";

export interface Word {
  text: string;
  start: number;
  end: number;
  probability: number;
  /** The speaker's label ("S1"), as its result's; "" without diarization. */
  speaker: string;
}

/** One message of a live stream; `kind` says which (times in seconds of audio). */
export interface Result {
  kind: ResultKind;
  isFinal: boolean;
  text: string;
  start: number;
  end: number;
  stability: number;
  confidence: number;
  /** Final results: index of the stored segment; otherwise -1. */
  segmentIndex: number;
  /** Final results: 0 when a segment is first sent; 1 when it is sent again with revised
   * text, which replaces (never adds to) that segment's text. See `FinalText`. */
  revision: number;
  words: Word[];
  /** Session results: the id of the stored transcript. */
  transcriptId: string;
  storagePending: boolean;
  /** The language of the text ("de"): on a session, the stream's ("" while a multilingual
   * model detects it); on results, the detected (or forced) one from the first final on. */
  languageCode: string;
  /** Session results: the model serving the stream, e.g. "base". */
  model: string;
  /** The speaker's label ("S1") when the stream asked for it with
   * `diarizationConfig: { enableSpeakerDiarization: true }`; provisional on interims. A
   * final whose label the server corrected at the end comes again as a revision. */
  speaker: string;
  /** "speaker_names" results (a stream with `diarizationConfig.rememberVoices`): the
   * transcript's names for its labels so far, e.g. { S1: "Alice" }, sent when a speaker
   * is recognised as a remembered voice; show `speakerNames[speaker] ?? speaker`. */
  speakerNames: Record<string, string>;
}

export type StreamConfig = MessageInitShape<typeof StreamingTranscriptionConfigSchema>;

/** A model the server has loaded; pass its `name` as `model` in the stream config. */
export interface Model {
  name: string;
  /** BCP-47 primary subtags it transcribes, e.g. ["en"] or ["af", ..., "zh"]. */
  languageCodes: string[];
  /** It detects the language of a stream whose `languageCode` is "" or "auto". */
  detectsLanguage: boolean;
  /** The model a stream gets without `model`. */
  isDefault: boolean;
  description: string;
}

export interface Options {
  /** "http://host:port" for plaintext HTTP/2, "https://host:port" for TLS. */
  baseUrl: string;
  /** Sent as `authorization: Bearer <key>` on every call. */
  apiKey?: string;
  /** PEM root certificate(s) to trust for TLS, e.g. a self-signed server's. */
  ca?: string | Buffer;
  /** Attempts for idempotent unary calls while the server is UNAVAILABLE (default 5). */
  attempts?: number;
  /** Deadline of unary calls in milliseconds (default 30000). */
  timeoutMs?: number;
}

/** A protobuf Duration or Timestamp as seconds. */
export const seconds = (d?: Duration | Timestamp): number =>
  d ? Number(d.seconds) + d.nanos / 1e9 : 0;

// Safe to send twice; DeleteTranscript is not (a repeat of a delete that went through
// would report NOT_FOUND).
const IDEMPOTENT = new Set([
  "ListModels",
  "ListTranscripts",
  "GetTranscript",
  "SearchTranscripts",
  "ExportTranscript",
  "UpdateTranscript",
  "ListVoices",
]);

function retrying(attempts: number): Interceptor {
  return (next) => async (req) => {
    if (req.stream || !IDEMPOTENT.has(req.method.name)) return next(req);
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code !== Code.Unavailable || attempt >= attempts) throw err;
        const backoffMs = Math.min(5000, 200 * 2 ** (attempt - 1)) * Math.random();
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
      }
    }
  };
}

function toResults(resp: StreamingTranscribeResponse): Result[] {
  const base = {
    isFinal: false, text: "", start: 0, end: 0, stability: 0, confidence: 0,
    segmentIndex: -1, revision: 0, words: [] as Word[], transcriptId: "", storagePending: false,
    speaker: "", languageCode: "", model: "", speakerNames: {} as Record<string, string>,
  };
  const out: Result[] = [];
  if (resp.session) {
    const s = resp.session;
    out.push({
      ...base, kind: "session", transcriptId: s.transcriptId, model: s.model,
      languageCode: s.languageCode,
    });
  }
  if (resp.speechEventType !== SpeechEventType.UNSPECIFIED) {
    const at = seconds(resp.speechEventOffset);
    const begin = resp.speechEventType === SpeechEventType.SPEECH_ACTIVITY_BEGIN;
    out.push({ ...base, kind: begin ? "speech_begin" : "speech_end", start: at, end: at });
  }
  if (Object.keys(resp.speakerNames).length) {
    out.push({ ...base, kind: "speaker_names", speakerNames: { ...resp.speakerNames } });
  }
  for (const r of resp.results) {
    const alt = r.alternatives[0];
    out.push({
      ...base,
      kind: r.isFinal ? "final" : "interim",
      isFinal: r.isFinal,
      text: alt?.transcript ?? "",
      start: seconds(r.resultStartOffset),
      end: seconds(r.resultEndOffset),
      stability: r.stability,
      confidence: alt?.confidence ?? 0,
      segmentIndex: r.isFinal ? r.segmentIndex : -1,
      revision: r.isFinal ? r.revision : 0,
      words: (alt?.words ?? []).map((w: WordInfo) => ({
        text: w.word, start: seconds(w.startOffset), end: seconds(w.endOffset),
        probability: w.probability, speaker: w.speakerLabel,
      })),
      storagePending: r.storagePending,
      speaker: r.speakerLabel,
      languageCode: r.languageCode,
    });
  }
  return out;
}

/** The final text of a stream so far, one entry per segment index: joining finals in
 * arrival order would repeat a sentence the server revised; keyed, the revision replaces it. */
export class FinalText {
  private readonly byIndex = new Map<number, Result>();

  /** Takes a final (other kinds are ignored); true when it replaced a segment's text. */
  add(r: Result): boolean {
    if (!r.isFinal) return false;
    const replaced = this.byIndex.has(r.segmentIndex);
    this.byIndex.set(r.segmentIndex, r);
    return replaced;
  }

  /** The current final of every segment, in segment order. */
  get segments(): Result[] {
    return [...this.byIndex].sort(([a], [b]) => a - b).map(([, r]) => r);
  }

  get text(): string {
    return this.segments.map((r) => r.text).filter(Boolean).join(" ");
  }
}

const FORMATS = {
  txt: ExportFormat.TXT,
  srt: ExportFormat.SRT,
  vtt: ExportFormat.VTT,
  json: ExportFormat.JSON,
} as const;

export class TranscribeClient {
  /** The generated clients, for anything the helpers below do not cover. */
  readonly streaming: Client<typeof TranscriptionService>;
  readonly transcripts: Client<typeof TranscriptService>;
  private readonly timeoutMs: number;

  constructor(opts: Options) {
    const auth: Interceptor = (next) => async (req) => {
      if (opts.apiKey) req.header.set("authorization", `Bearer ${opts.apiKey}`);
      return next(req);
    };
    const transport = createGrpcTransport({
      baseUrl: opts.baseUrl,
      interceptors: [retrying(opts.attempts ?? 5), auth],
      nodeOptions: opts.ca ? { ca: opts.ca } : undefined,
      // A server with gRPC's default policy refuses pings more often than every 5 minutes.
      pingIntervalMs: 300_000,
    });
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.streaming = createClient(TranscriptionService, transport);
    this.transcripts = createClient(TranscriptService, transport);
  }

  /** The models the server has loaded, its default first, with their languages. */
  async listModels(): Promise<Model[]> {
    const resp = await this.streaming.listModels({}, { timeoutMs: this.timeoutMs });
    return resp.models.map((m) => ({
      name: m.name, languageCodes: [...m.languageCodes], detectsLanguage: m.detectsLanguage,
      isDefault: m.isDefault, description: m.description,
    }));
  }

  /** Streams audio chunks (the config goes first) and yields results until every word is
   * final. Leaving the loop early cancels the stream. Choose the model and language with
   * `{ model: "base", languageCode: "de" }` (without `languageCode` a multilingual model
   * detects it: see `Result.languageCode`). */
  async *transcribe(
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    config: StreamConfig = {},
  ): AsyncGenerator<Result> {
    const cfg = create(StreamingTranscriptionConfigSchema, {
      interimResults: true,
      enableWordTimeOffsets: true,
      enableRevisions: true,
      ...config,
    });
    async function* requests(): AsyncGenerator<StreamingTranscribeRequest> {
      yield create(StreamingTranscribeRequestSchema, {
        streamingRequest: { case: "config", value: cfg },
      });
      for await (const chunk of chunks) {
        if (chunk.length === 0) continue;
        yield create(StreamingTranscribeRequestSchema, {
          streamingRequest: { case: "audioContent", value: chunk },
        });
      }
    }
    for await (const resp of this.streaming.streamingTranscribe(requests())) {
      yield* toResults(resp);
    }
  }

  listTranscripts(
    opts: { pageSize?: number; pageToken?: string; tags?: string[] } = {},
  ): Promise<ListTranscriptsResponse> {
    return this.transcripts.listTranscripts(opts, { timeoutMs: this.timeoutMs });
  }

  async getTranscript(transcriptId: string): Promise<Transcript> {
    const resp = await this.transcripts.getTranscript(
      { transcriptId },
      { timeoutMs: this.timeoutMs },
    );
    if (!resp.transcript) throw new ConnectError("no transcript in response", Code.Internal);
    return resp.transcript;
  }

  /**
   * Segments holding all the words (or a "quoted phrase"), newest first. `speaker` keeps one
   * speaker's segments: a label ("S2") or a name given with speakerNames ("alice", any case).
   * Each hit carries `speakerLabel` and `speakerName`.
   */
  searchTranscripts(
    query: string,
    opts: { pageSize?: number; pageToken?: string; speaker?: string } = {},
  ): Promise<SearchTranscriptsResponse> {
    return this.transcripts.searchTranscripts({ query, ...opts }, { timeoutMs: this.timeoutMs });
  }

  /** Changes only the fields given. */
  async updateTranscript(
    transcriptId: string,
    change: { title?: string; tags?: string[]; speakerNames?: Record<string, string> },
  ): Promise<Transcript | undefined> {
    const paths = Object.keys(change).map((k) => (k === "speakerNames" ? "speaker_names" : k));
    const resp = await this.transcripts.updateTranscript(
      { transcript: { id: transcriptId, ...change }, updateMask: { paths } },
      { timeoutMs: this.timeoutMs },
    );
    return resp.transcript;
  }

  /**
   * The voices remembered for the caller (streams with
   * `diarizationConfig: { enableSpeakerDiarization: true, rememberVoices: true }`), by name.
   */
  async listVoices(): Promise<Voice[]> {
    return (await this.transcripts.listVoices({}, { timeoutMs: this.timeoutMs })).voices;
  }

  /** Forgets a remembered voice (its voice print is deleted); NOT_FOUND if there is none. */
  async forgetVoice(name: string): Promise<void> {
    await this.transcripts.deleteVoice({ name }, { timeoutMs: this.timeoutMs });
  }

  async deleteTranscript(transcriptId: string): Promise<void> {
    await this.transcripts.deleteTranscript({ transcriptId }, { timeoutMs: this.timeoutMs });
  }

  /** The transcript rendered as text, SRT, WebVTT or JSON. */
  async exportTranscript(
    transcriptId: string,
    format: keyof typeof FORMATS,
  ): Promise<{ content: Uint8Array; mimeType: string; fileName: string }> {
    const r = await this.transcripts.exportTranscript(
      { transcriptId, format: FORMATS[format] },
      { timeoutMs: this.timeoutMs },
    );
    return { content: r.content, mimeType: r.mimeType, fileName: r.fileName };
  }

  /** The stored recording, collected; `mimeType` says its container. */
  async getRecording(
    transcriptId: string,
  ): Promise<{ mimeType: string; totalSize: number; data: Uint8Array }> {
    let mimeType = "";
    let totalSize = 0;
    const parts: Uint8Array[] = [];
    for await (const msg of this.transcripts.getRecording({ transcriptId })) {
      if (parts.length === 0) {
        mimeType = msg.mimeType;
        totalSize = Number(msg.totalSize);
      }
      parts.push(msg.data);
    }
    return { mimeType, totalSize, data: Buffer.concat(parts) };
  }
}
