// A small typed wrapper over the generated transcribe.v1 client (src/gen, never edited):
// one place for the transport policy, the config sent first, plain typed results.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { ReplayableAudio } from "./audio.js";
import {
  AudioEncoding,
  StreamingTranscribeRequestSchema,
  StreamingTranscriptionConfigSchema,
  TranscriptionService,
  type StreamingTranscribeRequest,
  type StreamingTranscriptionConfig,
} from "./gen/transcribe/v1/streaming_pb.js";
import {
  ExportFormat,
  TranscriptService,
  type ListTranscriptsResponse,
  type SearchTranscriptsResponse,
  type Transcript,
  type Voice,
} from "./gen/transcribe/v1/transcripts_pb.js";
import { type Result, toResults } from "./results.js";
import { replicaTransport, sleep } from "./transport.js";

export { AudioEncoding, type Transcript, type Voice };
export { FinalText, seconds, type Result, type ResultKind, type Word } from "./results.js";

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
  /** "http://host:port" for plaintext HTTP/2, "https://host:port" for TLS; or several
   * replicas of the server, called round robin (a stream one refuses goes to the next). */
  baseUrl: string | string[];
  /** Sent as `authorization: Bearer <key>` on every call. */
  apiKey?: string;
  /** PEM root certificate(s) to trust for TLS, e.g. a self-signed server's. */
  ca?: string | Buffer;
  /** Attempts for idempotent unary calls while the server is UNAVAILABLE (default 5). */
  attempts?: number;
  /** Calls made for one stream when a server refuses it before answering (at its stream
   * limit, draining, or down), each to the next replica (default 3). */
  streamAttempts?: number;
  /** Deadline of unary calls in milliseconds (default 30000). */
  timeoutMs?: number;
}

/** Per call: `signal` cancels the call (on the server too); it then throws CANCELED.
 * `timeoutMs` replaces the client's deadline for a unary call. */
export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** Per stream: `signal` as for any call; `suspend` ends the stream resumable. */
export interface StreamOptions extends Pick<CallOptions, "signal"> {
  /** End the stream with `suspend` when the audio ends, instead of a bare end: every word
   * heard is still made final and stored, and the stream ends OK, but the transcript stays
   * interrupted, so this program (or another) continues it with `resumeTranscriptId` (the
   * session result's `transcriptId`). Read when the audio ends: a program may set it on
   * this object while the stream runs (e.g. told to shut down), then end its source. */
  suspend?: boolean;
}

// Statuses with which a server refuses a stream it never started: at its stream limit
// (RESOURCE_EXHAUSTED), draining or gone (UNAVAILABLE). Another replica may take it.
const FAILOVER = new Set([Code.ResourceExhausted, Code.Unavailable]);
const FAILOVER_BACKOFF_MS = 100;
// The server answers a config at once (session info, or an error); this only bounds the
// wait for one that does not.
const ANSWER_WAIT_MS = 1000;

const FORMATS = {
  txt: ExportFormat.TXT,
  srt: ExportFormat.SRT,
  vtt: ExportFormat.VTT,
  json: ExportFormat.JSON,
} as const;

/** The fields updateTranscript changes, with their field-mask paths. */
const UPDATABLE = { title: "title", tags: "tags", speakerNames: "speaker_names" } as const;

export class TranscribeClient {
  /** The generated clients, for anything the helpers below do not cover. */
  readonly streaming: Client<typeof TranscriptionService>;
  readonly transcripts: Client<typeof TranscriptService>;
  private readonly timeoutMs: number;
  private readonly streamAttempts: number;

  constructor(opts: Options) {
    const transport = replicaTransport({
      baseUrls: typeof opts.baseUrl === "string" ? [opts.baseUrl] : opts.baseUrl,
      apiKey: opts.apiKey,
      ca: opts.ca,
      attempts: opts.attempts ?? 5,
    });
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.streamAttempts = Math.max(1, opts.streamAttempts ?? 3);
    this.streaming = createClient(TranscriptionService, transport);
    this.transcripts = createClient(TranscriptService, transport);
  }

  /** The unary call options for `call`: the client's deadline unless it gives one (a
   * `timeoutMs: undefined` gives none). */
  private opts(call: CallOptions): CallOptions {
    return { ...call, timeoutMs: call.timeoutMs ?? this.timeoutMs };
  }

  /** The models the server has loaded, its default first, with their languages. */
  async listModels(call: CallOptions = {}): Promise<Model[]> {
    const resp = await this.streaming.listModels({}, this.opts(call));
    return resp.models.map((m) => ({
      name: m.name, languageCodes: [...m.languageCodes], detectsLanguage: m.detectsLanguage,
      isDefault: m.isDefault, description: m.description,
    }));
  }

  /** Streams audio chunks (the config goes first) and yields results until every word is
   * final. Leaving the loop early, or aborting `call.signal`, cancels the stream (the
   * server stores its transcript as interrupted; an abort throws CANCELED). Choose the
   * model and language with `{ model: "base", languageCode: "de" }` (without
   * `languageCode` a multilingual model detects it: see `Result.languageCode`). A server
   * that refuses the stream before answering (RESOURCE_EXHAUSTED, UNAVAILABLE) is left for
   * the next replica, up to `streamAttempts` calls, with the audio read so far. With
   * `call.suspend` the transcript stays resumable (see `StreamOptions`). */
  async *transcribe(
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    config: StreamConfig = {},
    call: StreamOptions = {},
  ): AsyncGenerator<Result> {
    // An option given as undefined keeps its default: spread as is, it would turn
    // interims, words or revisions off.
    const given = Object.entries(config).filter(([, value]) => value !== undefined);
    const cfg = create(StreamingTranscriptionConfigSchema, {
      interimResults: true,
      enableWordTimeOffsets: true,
      enableRevisions: true,
      ...(Object.fromEntries(given) as StreamConfig),
    });
    const audio = new ReplayableAudio(chunks);
    try {
      for (let attempt = 1; ; attempt++) {
        let answered = false;
        try {
          for await (const result of this.stream(cfg, audio, call)) {
            answered = true;
            yield result;
          }
          return;
        } catch (e) {
          const err = ConnectError.from(e);
          const refused = !answered && FAILOVER.has(err.code) && !call.signal?.aborted;
          if (!refused || attempt >= this.streamAttempts) throw e;
        }
        audio.rewind();
        await sleep(FAILOVER_BACKOFF_MS * attempt, call.signal);
      }
    } finally {
      audio.close(); // stops reading the caller's source
    }
  }

  /** One StreamingTranscribe call carrying `audio`. */
  private async *stream(
    cfg: StreamingTranscriptionConfig,
    audio: ReplayableAudio,
    opts: StreamOptions,
  ): AsyncGenerator<Result> {
    // connect's response iterable has no return(): leaving the loop would leave the call
    // open and the audio pump running, so the call is cancelled here instead.
    const call = new AbortController();
    const signal = opts.signal;
    const aborted = signal ? AbortSignal.any([call.signal, signal]) : call.signal;
    let answer = (): void => {};
    const answered = new Promise<void>((resolve) => (answer = resolve));
    async function* requests(): AsyncGenerator<StreamingTranscribeRequest> {
      yield create(StreamingTranscribeRequestSchema, {
        streamingRequest: { case: "config", value: cfg },
      });
      // Audio waits (at most a moment) for the server's first answer: a stream it refuses
      // then ends with its status, and only the config was sent to it.
      const waited = new AbortController();
      const timer = sleep(ANSWER_WAIT_MS, AbortSignal.any([aborted, waited.signal]));
      await Promise.race([answered, timer.catch(() => {})]);
      waited.abort();
      for (;;) {
        const chunk = await audio.next(aborted);
        if (chunk === undefined) break;
        if (chunk.length === 0) continue;
        yield create(StreamingTranscribeRequestSchema, {
          streamingRequest: { case: "audioContent", value: chunk },
        });
      }
      if (opts.suspend) {
        // The transcript stays resumable; the responses are read to the end as usual.
        yield create(StreamingTranscribeRequestSchema, {
          streamingRequest: { case: "suspend", value: true },
        });
      }
    }
    try {
      const responses = this.streaming.streamingTranscribe(requests(), { signal: aborted });
      for await (const resp of responses) {
        audio.confirm();
        answer();
        yield* toResults(resp);
      }
    } finally {
      call.abort();
    }
  }

  listTranscripts(
    opts: { pageSize?: number; pageToken?: string; tags?: string[] } = {},
    call: CallOptions = {},
  ): Promise<ListTranscriptsResponse> {
    return this.transcripts.listTranscripts(opts, this.opts(call));
  }

  async getTranscript(transcriptId: string, call: CallOptions = {}): Promise<Transcript> {
    const resp = await this.transcripts.getTranscript({ transcriptId }, this.opts(call));
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
    call: CallOptions = {},
  ): Promise<SearchTranscriptsResponse> {
    return this.transcripts.searchTranscripts({ query, ...opts }, this.opts(call));
  }

  /** Changes only the fields given (a field set to `undefined` is not given). */
  async updateTranscript(
    transcriptId: string,
    change: { title?: string; tags?: string[]; speakerNames?: Record<string, string> },
    call: CallOptions = {},
  ): Promise<Transcript | undefined> {
    // The mask names what the server overwrites: a key whose value is undefined would
    // clear that field, and one create() ignores (e.g. `speaker_names`) would clear it too.
    const paths: string[] = [];
    for (const [key, value] of Object.entries(change)) {
      if (value === undefined) continue;
      if (!Object.hasOwn(UPDATABLE, key)) {
        throw new ConnectError(
          `updateTranscript: unknown field "${key}"; change title, tags or speakerNames`,
          Code.InvalidArgument,
        );
      }
      paths.push(UPDATABLE[key as keyof typeof UPDATABLE]);
    }
    const resp = await this.transcripts.updateTranscript(
      { transcript: { id: transcriptId, ...change }, updateMask: { paths } },
      this.opts(call),
    );
    return resp.transcript;
  }

  /**
   * The voices remembered for the caller (streams with
   * `diarizationConfig: { enableSpeakerDiarization: true, rememberVoices: true }`), by name.
   */
  async listVoices(call: CallOptions = {}): Promise<Voice[]> {
    return (await this.transcripts.listVoices({}, this.opts(call))).voices;
  }

  /** Forgets a remembered voice (its voice print is deleted); NOT_FOUND if there is none. */
  async forgetVoice(name: string, call: CallOptions = {}): Promise<void> {
    await this.transcripts.deleteVoice({ name }, this.opts(call));
  }

  async deleteTranscript(transcriptId: string, call: CallOptions = {}): Promise<void> {
    await this.transcripts.deleteTranscript({ transcriptId }, this.opts(call));
  }

  /** The transcript rendered as text, SRT, WebVTT or JSON. */
  async exportTranscript(
    transcriptId: string,
    format: keyof typeof FORMATS,
    call: CallOptions = {},
  ): Promise<{ content: Uint8Array; mimeType: string; fileName: string }> {
    const r = await this.transcripts.exportTranscript(
      { transcriptId, format: FORMATS[format] },
      this.opts(call),
    );
    return { content: r.content, mimeType: r.mimeType, fileName: r.fileName };
  }

  /** The stored recording, collected; `mimeType` says its container. No deadline (a
   * download of any size) unless `call.timeoutMs` gives one. */
  async getRecording(
    transcriptId: string,
    call: CallOptions = {},
  ): Promise<{ mimeType: string; totalSize: number; data: Uint8Array }> {
    let mimeType = "";
    let totalSize = 0;
    const parts: Uint8Array[] = [];
    for await (const msg of this.transcripts.getRecording({ transcriptId }, call)) {
      if (parts.length === 0) {
        mimeType = msg.mimeType;
        totalSize = Number(msg.totalSize);
      }
      parts.push(msg.data);
    }
    return { mimeType, totalSize, data: Buffer.concat(parts) };
  }
}
