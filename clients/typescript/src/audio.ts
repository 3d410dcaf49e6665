// The audio of one logical stream, which may be sent to several servers in turn.
import { Code, ConnectError } from "@connectrpc/connect";
import { canceled } from "./transport.js";

/** Chunks read from the caller's source ahead of the stream: a slow server slows it. */
const READ_AHEAD = 16;

/** The error for an audio chunk that is not bytes (plain JavaScript): without it an
 * Int16Array went out as a corrupt message and a string failed inside the encoder. */
function notBytes(chunk: unknown, n: number): ConnectError {
  const hint = ArrayBuffer.isView(chunk)
    ? `an ${chunk.constructor.name}; pass new Uint8Array(c.buffer, c.byteOffset, c.byteLength)`
    : chunk instanceof ArrayBuffer
      ? "an ArrayBuffer; pass new Uint8Array(c)"
      : typeof chunk === "number"
        ? "a number (a Buffer passed whole? pass [buffer])"
        : chunk === null ? "null" : `a ${typeof chunk}`;
  return new ConnectError(
    `audio chunk ${n} is ${hint}: chunks are Uint8Array (or Buffer) of the encoded audio`,
    Code.InvalidArgument,
  );
}

/**
 * A pump alone reads the caller's source, into a bounded buffer; a call takes chunks with
 * `next(signal)`, which gives up without taking one once the call is aborted (a refused
 * call's request iterator, which connect may leave waiting, never swallows a chunk the
 * next call needs). Chunks taken before a server answered are kept: `rewind()` sends them
 * again to the next server, `confirm()` drops them once a server has taken the stream.
 */
export class ReplayableAudio {
  private readonly buffer: Uint8Array[] = [];
  private end: { error?: unknown } | undefined;
  private unconfirmed: Uint8Array[] = [];
  private replay: Uint8Array[] = [];
  private confirmed = false;
  private closed = false;
  private pumping: Promise<void> | undefined;
  private waiters: Array<() => void> = [];

  constructor(private readonly source: AsyncIterable<unknown> | Iterable<unknown>) {}

  private changed(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private change(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        signal?.removeEventListener("abort", wake);
        resolve();
      };
      this.waiters.push(wake);
      signal?.addEventListener("abort", wake, { once: true });
    });
  }

  private async pump(): Promise<void> {
    let n = 0;
    try {
      for await (const chunk of this.source) {
        n++;
        if (!(chunk instanceof Uint8Array)) throw notBytes(chunk, n);
        while (this.buffer.length >= READ_AHEAD && !this.closed) await this.change();
        if (this.closed) return; // leaving the loop returns the caller's source
        this.buffer.push(chunk);
        this.changed();
      }
      this.end = {};
    } catch (error) {
      this.end = { error }; // raised where the chunk is taken
    } finally {
      this.end ??= {};
      this.changed();
    }
  }

  /** The next chunk, undefined at the end; throws what the source threw, and CANCELED
   * (taking nothing) once `signal` aborts. */
  async next(signal?: AbortSignal): Promise<Uint8Array | undefined> {
    if (signal?.aborted) throw canceled(signal);
    let chunk = this.replay.shift();
    if (chunk === undefined) {
      this.pumping ??= this.pump();
      while (this.buffer.length === 0 && this.end === undefined && !signal?.aborted) {
        await this.change(signal);
      }
      if (signal?.aborted) throw canceled(signal);
      chunk = this.buffer.shift();
      this.changed();
      if (chunk === undefined) {
        if (this.end?.error !== undefined) throw this.end.error;
        return undefined;
      }
    }
    if (!this.confirmed) this.unconfirmed.push(chunk);
    return chunk;
  }

  /** A server took the stream: what it was sent is its own now. */
  confirm(): void {
    this.confirmed = true;
    this.unconfirmed = [];
  }

  /** The server refused the stream: send it all again, from the first chunk. */
  rewind(): void {
    this.replay = [...this.unconfirmed, ...this.replay];
    this.unconfirmed = [];
  }

  /** Stops reading the source (at its next chunk: a read in progress cannot be stopped). */
  close(): void {
    this.closed = true;
    this.changed();
  }
}
