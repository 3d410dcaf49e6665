// A small typed wrapper over the generated transcribe.v1 client: config first, typed results.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  AudioEncoding,
  StreamingTranscribeRequestSchema,
  StreamingTranscriptionConfigSchema,
  TranscriptionService,
} from "./gen/transcribe/v1/streaming_pb.js";
import { TranscriptService } from "./gen/transcribe/v1/transcripts_pb.js";

export { AudioEncoding };

export interface Result {
  transcriptId?: string;
  text: string;
  isFinal: boolean;
  stability: number;
  start: number;
  end: number;
  segmentIndex: number;
}

export interface Options {
  /** e.g. "http://127.0.0.1:50051" (or https:// for TLS). */
  baseUrl: string;
  /** API key sent as `authorization: Bearer <key>`. */
  apiKey?: string;
}

const seconds = (d?: { seconds: bigint; nanos: number }): number =>
  d ? Number(d.seconds) + d.nanos / 1e9 : 0;

export class Transcriber {
  readonly streaming: Client<typeof TranscriptionService>;
  readonly transcripts: Client<typeof TranscriptService>;

  constructor(opts: Options) {
    const auth: Interceptor = (next) => async (req) => {
      if (opts.apiKey) req.header.set("authorization", `Bearer ${opts.apiKey}`);
      return next(req);
    };
    const transport = createGrpcTransport({ baseUrl: opts.baseUrl, interceptors: [auth] });
    this.streaming = createClient(TranscriptionService, transport);
    this.transcripts = createClient(TranscriptService, transport);
  }

  /** Streams audio chunks (config first) and yields interim and final results. */
  async *transcribe(
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    config: MessageInitShape<typeof StreamingTranscriptionConfigSchema> = {},
  ): AsyncGenerator<Result> {
    const cfg = create(StreamingTranscriptionConfigSchema, { interimResults: true, ...config });
    async function* requests() {
      yield create(StreamingTranscribeRequestSchema, {
        streamingRequest: { case: "config", value: cfg },
      });
      for await (const chunk of chunks) {
        yield create(StreamingTranscribeRequestSchema, {
          streamingRequest: { case: "audioContent", value: chunk },
        });
      }
    }
    for await (const resp of this.streaming.streamingTranscribe(requests())) {
      if (resp.session) {
        yield { transcriptId: resp.session.transcriptId, text: "", isFinal: false, stability: 0, start: 0, end: 0, segmentIndex: -1 };
      }
      for (const r of resp.results) {
        yield {
          text: r.alternatives[0]?.transcript ?? "",
          isFinal: r.isFinal,
          stability: r.stability,
          start: seconds(r.resultStartOffset),
          end: seconds(r.resultEndOffset),
          segmentIndex: r.isFinal ? r.segmentIndex : -1,
        };
      }
    }
  }
}
