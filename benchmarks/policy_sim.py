"""Replay clips through the streaming policy and the engine, without gRPC or a clock.

    python -m benchmarks.policy_sim --limit 20
    python -m benchmarks.policy_sim --manifest ../shared/speech/long/manifest.jsonl --limit 1 \
        --max-seconds 300

Why: `stream_bench` measures the service as users see it, but a dev run takes
4-5 minutes of real time and its WER moves with machine timing. This feeds the
same 100 ms chunks, Silero VAD and policy a lone real-time stream gets, and runs
each decode the moment the policy asks for it (a lone stream's decodes take
~0.2 s, less than a 0.5 s step, so the cadence is the one of real time). The
result is deterministic and fast, so policy and engine changes can be compared
on WER and decode cost before the real benchmark confirms them.

Streaming settings can be changed with the server's own flags after `--`
(e.g. `-- --beam-size 5 --min-encode-seconds 30`).

Settings: the chosen model's own (its catalogue defaults, service/models.py, then the
flags after `--`), as a server that loads it gives a lone stream.

Other languages (`--model base`): `--language de` replays the manifest's German rows
forced to German, `--language rows` every row forced to its own language, `--language auto`
every row detected as a stream with language auto does (service/stream_language.py; each
clip reports the language of its results and the decodes' detections). Scored per
language by WER, or CER for Chinese and Japanese, against the same model offline (beam 5,
the same language setting); `--half tune|confirm` takes every second clip of each language:
    python -m benchmarks.policy_sim --manifest ../shared/speech/multilingual/manifest.jsonl \
        --model base --language auto --limit 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchmarks.lib import scoring
from benchmarks.lib.analysis import final_transcript, word_timings
from benchmarks.lib.analysis import summary as stats
from benchmarks.lib.clips import (
    DEFAULT_MANIFEST,
    Clip,
    Offline,
    by_speakers,
    load_clip,
    pick,
    read_manifest,
)
from benchmarks.lib.server import git_version
from service.config import build_settings
from service.engine import WhisperEngine
from service.models import resolve, settings_for
from service.policy import DecodeJob, Policy, PolicyConfig, filters, policy_config
from service.policy import policy as policy_module
from service.policy.jobs import JobKind
from service.policy.words import text_of
from service.stream_language import StreamLanguage
from service.vad import FrameVad, shared_vad

CHUNK = 1600  # 100 ms, as stream_bench sends


def replay(
    engine: WhisperEngine,
    cfg: PolicyConfig,
    clip: Clip,
    language: str | None = None,
    trace: str | None = None,
    shared: bool = False,
    log_decodes: bool = False,
    slack: bool = False,
) -> dict[str, Any]:
    """Final text and decode cost of one clip streamed alone at real-time cadence.
    `language` "" detects it as a stream with language auto does (service/stream_language:
    what each result says, and the decodes' detections, are reported); None leaves the
    requests as they are (the engine's own language). `trace` "" detects on every decode
    whatever the stream's language says (every decode's detection is reported). `shared`
    decodes as while other streams share the model (shared beam, step and buffer cap, no
    second pass), without the queueing that comes with sharing. `log_decodes`: each decode's
    window, context, text and the results it sent ("decode_log", for reading what streaming
    did against the offline text)."""
    policy = Policy(cfg)
    lang = StreamLanguage(language) if language is not None else None
    detections: list[list[Any]] = []  # [stream s, detected, probability, speech s]
    result_languages: list[list[Any]] = []  # [stream s, is_final, language, fixed]
    vad = FrameVad(shared_vad())
    decodes: dict[str, int] = {}
    minutes: dict[int, list[float]] = {}  # minute of the stream: [decodes, audio s, wall s]
    responses: list[tuple[float, Any]] = []  # (stream time the result would arrive, result)
    dropped: list[str] = []  # what the hallucination filters took out of each decode
    log: list[list[Any]] = []  # per decode: [stream s, kind, start s, end s, context, text, sent]

    def run(job: DecodeJob) -> None:
        policy.job_started(job)
        t0 = time.perf_counter()
        request = job.request()
        if lang is not None:
            request = replace(request, language=lang.forced if trace is None else trace)
        result = engine.decode_batch([request])[0]
        took = time.perf_counter() - t0
        if lang is not None:
            speech_s = sum(w.end - w.start for w in result.words)
            if not request.language:
                detections.append(
                    [round(policy.received_s, 2), result.language,
                     round(result.language_probability, 3), round(speech_s, 2)]
                )  # fmt: skip
            lang.heard(result.language, result.language_probability, speech_s)
        row = minutes.setdefault(int(policy.received_s // 60), [0, 0.0, 0.0])
        row[0] += 1
        row[1] += len(job.audio) / 16000
        row[2] += took
        decodes[job.kind.value] = decodes.get(job.kind.value, 0) + 1
        # Alone, a decode starts when its audio has arrived and answers `took` later.
        arrival = policy.received_s + took
        sent: list[str] = []
        for u in policy.on_result(job, result):
            sent.append(("F" if u.is_final else "I") + (f"r{u.revision}" if u.revision else "")
                        + f"#{u.segment_index}: {u.text}")  # fmt: skip
            if lang is not None:
                said, fixed = lang.on_result(u.is_final)
                if u.is_final or fixed:
                    result_languages.append([round(policy.received_s, 2), said, fixed])
            alt = SimpleNamespace(transcript=u.text)
            res = SimpleNamespace(
                is_final=u.is_final,
                alternatives=[alt],
                segment_index=u.segment_index,
                revision=u.revision,
            )
            responses.append((arrival, SimpleNamespace(results=[res])))
        dropped.extend(f"{job.kind.value}: {d}" for d in _DROPS.pop(id(job), []))
        if log_decodes:
            log.append(
                [round(policy.received_s, 2), job.kind.value, round(job.start_s, 2),
                 round(job.end_s, 2), job.context[-40:], text_of(result.words), sent]
            )  # fmt: skip

    for start in range(0, len(clip.audio), CHUNK):
        samples = clip.audio[start : start + CHUNK]
        policy.push(samples, [float(p) for p in vad.feed(samples)])
        job = policy.next_job(caught_up=True, shared=shared, beside=slack)
        if job is not None:
            run(job)
            if slack and job.kind is JobKind.REVISE:  # the first pass goes on beside it
                if job := policy.next_job(caught_up=True, shared=shared, beside=True):
                    run(job)
    policy.finish()
    while (job := policy.next_job(shared=shared, beside=slack)) is not None:
        run(job)
    timed = word_timings(responses, clip.word_ends)
    return {
        "id": clip.id,
        "latency": [[round(t.final_latency, 3), round(t.interim_latency, 3)] for t in timed],
        "final_text": final_transcript(responses),
        "first_pass_text": final_transcript(responses, revised=False),
        **(
            {
                "language": lang.language if lang.language else lang.leading,
                "first_final_language": next((x[1] for x in result_languages), ""),
                "fixed_at_s": next((x[0] for x in result_languages if x[2]), None),
                "result_languages": result_languages,
                "detections": detections,
            }
            if lang is not None
            else {}
        ),
        **({"decode_log": log} if log_decodes else {}),
        "revisions": sum(1 for _, r in responses if r.results[0].revision),
        "dropped": dropped,
        "decodes": decodes,
        "decoded_audio_s": round(sum(r[1] for r in minutes.values()), 1),
        "decode_wall_s": round(sum(r[2] for r in minutes.values()), 2),
        # Per minute of the stream: decodes, audio seconds decoded, decode wall seconds
        # (the policy and model side of "cost flat over a long session").
        "per_minute": [
            [m, int(r[0]), round(r[1], 1), round(r[2], 2)] for m, r in sorted(minutes.items())
        ],
    }


_DROPS: dict[int, list[str]] = {}  # what the filters took out of a first-pass decode
_clean = filters.clean


def _recording_clean(job: DecodeJob, result: Any, **kw: Any) -> list[Any]:
    """`clean`, noting what its hallucination filters dropped: the aligner's cuts and
    subtitle credits (`heard`), then the silence, speech-gate, loop and sign-off rules
    (not the removal of words already committed, which is no hallucination)."""
    words = _clean(job, result, **kw)
    raw = text_of(result.words)
    heard = filters.heard(job, result)
    slack = kw["committed_end"] - filters.COMMITTED_SLACK_S
    plain = [w for w in heard if w.start >= slack]
    plain = filters.drop_repeat(plain, kw["recent"], kw["committed_end"])
    notes = _DROPS.setdefault(id(job), [])
    if text_of(heard) != raw:
        notes.append(f"heard {raw!r} -> {text_of(heard)!r}")
    if text_of(plain) != text_of(words):
        notes.append(f"filtered {text_of(plain)!r} -> {text_of(words)!r}")
    return words


policy_module.clean = _recording_clean  # type: ignore[attr-defined]


def _clips(args: argparse.Namespace) -> list[Clip]:
    """The clips to replay with their offline reference (the same model, beam 5, in the
    same language setting: detected when the streams detect)."""
    entries = by_speakers(read_manifest(args.manifest), args.speakers)
    if args.model != "base":
        offline = Offline()
        return [load_clip(args.manifest, e, offline, args.max_seconds)
                for e in pick(entries, args.limit)]  # fmt: skip
    entries = [{"language": "en", **e} for e in entries]  # dev/ and long/ rows: English
    if args.language not in ("auto", "rows"):
        entries = [e for e in entries if e["language"] == args.language]
    elif args.languages:
        keep = set(args.languages.split(","))
        entries = [e for e in entries if e["language"] in keep]
    if args.half:  # every second clip of each language: tuning 0, 2, 4 ..., confirmation 1, 3 ...
        seen: dict[str, int] = {}
        kept = []
        for e in entries:
            n = seen[e["language"]] = seen.get(e["language"], -1) + 1
            if n % 2 == (0 if args.half == "tune" else 1):
                kept.append(e)
        entries = kept
    entries = pick(entries, args.limit)
    code = "auto" if args.language == "auto" else ""
    offline = Offline(model="base")
    return [
        load_clip(args.manifest, e, offline, args.max_seconds, code or e["language"])
        for e in entries
    ]


def _by_language(clips: list[Clip], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per language: streaming, first-pass and offline error rate (CER for ja, zh), and
    how often the stream's language was right (at its first final, and at its end)."""
    out: dict[str, Any] = {}
    for language in sorted({c.language for c in clips}):
        pairs = [(c, r) for c, r in zip(clips, rows, strict=True) if c.language == language]
        refs = [c.reference for c, _ in pairs]
        stream = scoring.error_rate(refs, [r["final_text"] for _, r in pairs], language)
        offline = scoring.error_rate(refs, [c.offline_text for c, _ in pairs], language)
        out[language] = {
            "clips": len(pairs),
            "streaming": stream,
            "first_pass": scoring.error_rate(
                refs, [r["first_pass_text"] for _, r in pairs], language
            ),
            "offline": offline,
            "gap_points": None
            if stream is None or offline is None
            else round(100 * (stream - offline), 2),
        }
        if "language" in pairs[0][1]:
            out[language]["first_final_right"] = sum(
                r["first_final_language"] == language for _, r in pairs
            )
            out[language]["right"] = sum(r["language"] == language for _, r in pairs)
            out[language]["wrong"] = {r["id"]: r["language"] for _, r in pairs
                                      if r["language"] != language}  # fmt: skip
    return out


def main() -> None:
    argv = sys.argv[1:]
    server_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, server_args = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=0.0)
    ap.add_argument("--jobs", type=int, default=2, help="clips replayed at once")
    ap.add_argument("--out", type=Path, help="write the per-clip results as JSON")
    ap.add_argument("--model", choices=("tiny.en", "base"), default="tiny.en")
    ap.add_argument(
        "--language",
        default="en",
        help="with --model base: rows of this language, forced to it; 'rows': every row "
        "forced to its own language; 'auto': every row, detected as a stream does",
    )
    ap.add_argument("--languages", default="", help="with 'rows' or 'auto': only these (de,fr)")
    ap.add_argument(
        "--half", choices=("tune", "confirm"), help="with --model base: every second clip "
        "of each language (tune: the 1st, 3rd ...; confirm: the 2nd, 4th ...)"
    )  # fmt: skip
    ap.add_argument(
        "--trace", action="store_true", help="with --language auto: detect on every decode "
        "(never forced; for studying when a stream's detection is clear)"
    )  # fmt: skip
    ap.add_argument(
        "--decodes", action="store_true", help="with --out: each decode's window, context, "
        "text and the results it sent, per clip (decode_log)"
    )  # fmt: skip
    ap.add_argument("--speakers", default="", help="only these speakers (comma-separated)")
    ap.add_argument(
        "--shared", action="store_true", help="decode as while other streams share the model"
    )
    ap.add_argument(
        "--slack", action="store_true", help="with --shared: second passes as the scheduler's "
        "slack gives them (--revise-shared), each as soon as its sentence is complete"
    )  # fmt: skip
    args = ap.parse_args(argv)

    settings = build_settings(server_args, environ={})
    spec = resolve(args.model)
    # The model's own decode settings (its catalogue defaults, then the flags after --),
    # as a server that loads it gives its streams (service/models.settings_for).
    own = settings_for(spec, settings)
    model = replace(own.model, workers=max(1, args.jobs), cpu_threads=1)
    cfg = policy_config(own)
    clips = _clips(args)
    engine = WhisperEngine(model, spec)
    per_row = args.model == "base"

    def one(c: Clip) -> dict[str, Any]:
        code = "" if c.language_code == "auto" else c.language_code
        trace = "" if args.trace else None
        return replay(
            engine, cfg, c, code if per_row else None, trace, args.shared, args.decodes,
            args.slack,
        )  # fmt: skip

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        rows = list(pool.map(one, clips))
    cpu_s = time.process_time() - cpu0
    for c, r in zip(clips, rows, strict=True):  # for comparing clip by clip
        r["offline_text"], r["reference"] = c.offline_text, c.reference
        r["offline_language"] = c.offline_language
        if c.reference:  # errors per clip: which clips make a gap, and by how many words
            counts = {k: scoring.clip_errors(c.reference, r[k], c.language)
                      for k in ("final_text", "first_pass_text", "offline_text")}  # fmt: skip
            r["errors"] = {
                "streaming": counts["final_text"][0],
                "first_pass": counts["first_pass_text"][0],
                "offline": counts["offline_text"][0],
                "units": counts["offline_text"][1],
            }
    scored = [(c, r) for c, r in zip(clips, rows, strict=True) if c.reference]
    refs = [c.reference for c, _ in scored]
    audio_s = sum(c.duration_s for c in clips)
    one_language = args.model != "base" or args.language not in ("auto", "rows")

    def rate(hyps: list[str]) -> float | None:
        if not one_language:
            return None
        return scoring.error_rate(refs, hyps, args.language if args.model == "base" else "en")

    summary = {
        "clips": len(clips),
        "audio_s": round(audio_s, 1),
        "server_args": server_args,
        "shared": args.shared,
        "slack": args.slack,
        "speakers": args.speakers,
        "commit": git_version(),
        "model": args.model,
        "language": args.language,
        "half": args.half,
        "policy": {k: v for k, v in vars(cfg).items() if k not in ("prompt", "hotwords")},
        "min_encode_s": model.min_encode_s,
        # CER for languages written without spaces (ja, zh), WER otherwise.
        "wer_streaming": rate([r["final_text"] for _, r in scored]),
        "wer_first_pass": rate([r["first_pass_text"] for _, r in scored]),
        "wer_offline": rate([c.offline_text for c, _ in scored]),
        **({"languages": _by_language(clips, rows)} if per_row else {}),
        "decodes_with_words_dropped": sum(len(r["dropped"]) for r in rows),
        "decoded_audio_per_audio_s": round(sum(r["decoded_audio_s"] for r in rows) / audio_s, 2),
        "decode_wall_per_audio_s": round(sum(r["decode_wall_s"] for r in rows) / audio_s, 3),
        # The replay's whole process (decodes, VAD, policy) in CPU seconds per audio
        # second, with one CTranslate2 thread per clip: what a lone stream costs the host.
        "cpu_s_per_audio_s": round(cpu_s / audio_s, 3),
        # Estimated as a lone real-time stream would see them: a result arrives when
        # its decode's audio has arrived plus the decode's measured time.
        "final_latency_s": stats([f for r in rows for f, _ in r["latency"]]),
        "interim_latency_s": stats([i for r in rows for _, i in r["latency"]]),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(summary))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "clips": rows}, indent=1))


if __name__ == "__main__":
    main()
