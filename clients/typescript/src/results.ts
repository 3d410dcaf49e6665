// The results of a live stream as plain typed objects, and the final text they add up to.
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import type { WordInfo } from "./gen/transcribe/v1/common_pb.js";
import { SpeechEventType, type StreamingTranscribeResponse } from "./gen/transcribe/v1/streaming_pb.js";

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
  /** Final results: 0 when a segment is first sent; one more each time it is sent again
   * with revised text (its sentence's pass, then its turn's on base), which replaces
   * (never adds to) that segment's text. See `FinalText`. */
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

/** A protobuf Duration or Timestamp as seconds. */
export const seconds = (d?: Duration | Timestamp): number =>
  d ? Number(d.seconds) + d.nanos / 1e9 : 0;

export function toResults(resp: StreamingTranscribeResponse): Result[] {
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
