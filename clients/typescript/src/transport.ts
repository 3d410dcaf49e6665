// The transport policy of the client in one place: the servers (one or several replicas,
// called round robin), the API key, retries of idempotent unary calls, cancellation.
import type { DescMessage, DescMethodStreaming, DescMethodUnary, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

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

/** The error a call cancelled through `signal` ends with (connect's own for an abort). */
export function canceled(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason ?? "operation was aborted", Code.Canceled);
}

/** Waits `ms`, or rejects with CANCELED as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(canceled(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(canceled(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Refuses a baseUrl the transport cannot use, saying the form it wants: "host:port" (the
 * Python client's form) failed only at the first call, with "Invalid URL" and no more. */
export function checkBaseUrl(baseUrl: string): void {
  let scheme = "";
  try {
    scheme = new URL(baseUrl).protocol;
  } catch {
    // not a URL at all: refused below
  }
  if (scheme !== "http:" && scheme !== "https:") {
    throw new ConnectError(
      `baseUrl ${JSON.stringify(baseUrl)} is not http://host:port (plaintext) or ` +
        "https://host:port (TLS), e.g. http://127.0.0.1:50051",
      Code.InvalidArgument,
    );
  }
}

export interface ReplicaOptions {
  baseUrls: string[];
  apiKey?: string;
  ca?: string | Buffer;
  /** Attempts of an idempotent unary call while servers answer UNAVAILABLE. */
  attempts: number;
}

/**
 * One transport over every replica: each call goes to the next one round robin (as the
 * Python client's round_robin channel does), and an idempotent unary call that meets an
 * UNAVAILABLE server is retried with backoff on the next, within its one deadline.
 */
export function replicaTransport(opts: ReplicaOptions): Transport {
  if (opts.baseUrls.length === 0) {
    throw new ConnectError("baseUrl: give at least one server", Code.InvalidArgument);
  }
  opts.baseUrls.forEach(checkBaseUrl);
  const auth: Interceptor = (next) => async (req) => {
    if (opts.apiKey) req.header.set("authorization", `Bearer ${opts.apiKey}`);
    return next(req);
  };
  const replicas = opts.baseUrls.map((baseUrl) =>
    createGrpcTransport({
      baseUrl,
      interceptors: [auth],
      nodeOptions: opts.ca ? { ca: opts.ca } : undefined,
      // A server with gRPC's default policy refuses pings more often than every 5 minutes.
      pingIntervalMs: 300_000,
    }),
  );
  let turn = 0;
  const pick = (): Transport => replicas[turn++ % replicas.length];
  return {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ) {
      if (!IDEMPOTENT.has(method.name)) {
        return pick().unary(method, signal, timeoutMs, header, input, contextValues);
      }
      const deadline = timeoutMs !== undefined && timeoutMs > 0 ? Date.now() + timeoutMs : 0;
      const left = (): number | undefined =>
        deadline ? Math.max(1, deadline - Date.now()) : timeoutMs;
      for (let attempt = 1; ; attempt++) {
        try {
          return await pick().unary(method, signal, left(), header, input, contextValues);
        } catch (e) {
          const err = ConnectError.from(e);
          if (err.code !== Code.Unavailable || attempt >= opts.attempts) throw err;
          const backoffMs = Math.min(5000, 200 * 2 ** (attempt - 1)) * Math.random();
          await sleep(Math.min(backoffMs, left() ?? backoffMs), signal);
        }
      }
    },
    stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ) {
      return pick().stream(method, signal, timeoutMs, header, input, contextValues);
    },
  };
}
