"""Property-based fuzzing of the request handling of a real in-process server.

Random sequences of StreamingTranscribeRequest messages (config twice, audio before config,
empty streams, empty and oversized audio, absurd config values, long and odd-Unicode
titles and tags, invalid UTF-8 built by hand, bytes that are not protobuf at all) and random
unary requests (page sizes, tokens, ids, FTS-like queries, injection strings, updates of a
real transcript) must each get a normal answer or a clear INVALID_ARGUMENT / NOT_FOUND /
RESOURCE_EXHAUSTED with a message; never INTERNAL, UNKNOWN or a hang (every call has a
deadline, so a hang fails as DEADLINE_EXCEEDED). Where the answer is fully determined (a
valid config followed by known messages) the exact status is checked.

Two servers (SQLite and DynamoDB Local storage) run in their own thread for the whole
module, so hypothesis tries many small examples (and can shrink a failure to one call).
Real speech streams through the SQLite one at real time while each fuzzing test runs, and
must come out transcribed as when alone. Each test checks its own counts and real speech,
so each passes alone and in any order. Inputs found answered INTERNAL
are listed at the end as strict xfails, each naming its bug.

The clients are grpc's *sync* ones: the asyncio client may report INTERNAL "Internal error
from Core" instead of the server's status when it is still writing as the server ends the
call (grpc/grpc#36066); the sync client reports what the server sent, which is what this
test judges.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from transcribe.v1 import streaming_pb2, transcripts_pb2

from service.config import LimitSettings, Settings, StorageSettings
from service.engine import WhisperEngine
from service.server import RunningServer, start_server
from tests.dynamodb_local import DynamoDBLocal
from tests.helpers import Enc, chunks, decode_16k, dev_clips, latest_finals, pcm16, wer

T = TypeVar("T")
OK, INVALID, EXHAUSTED, NOT_FOUND = (
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.NOT_FOUND,
)
CLEAR = {OK, INVALID, EXHAUSTED, NOT_FOUND}
MAX_MESSAGE = 64 * 1024  # the server's limit per audio message (its transport allows 4x)
STREAM_METHOD = "/transcribe.v1.TranscriptionService/StreamingTranscribe"
pb = transcripts_pb2
Req = streaming_pb2.StreamingTranscribeRequest
Config = streaming_pb2.StreamingTranscriptionConfig
PCM = Enc.AUDIO_ENCODING_LINEAR16


# ---- the server, in its own thread and event loop for the whole module ----------------


class ServerThread:
    def __init__(self, engine: WhisperEngine, storage: StorageSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server")
        self.thread.start()
        limits = LimitSettings(max_message_bytes=MAX_MESSAGE, max_streams=32, idle_timeout_s=20)
        settings = Settings(port=0, storage=storage, limits=limits)
        self.running: RunningServer = self.run(start_server(settings, engine=engine))
        self.target = f"127.0.0.1:{self.running.port}"
        self.channel = grpc.insecure_channel(self.target)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.channel.close()
        self.run(self.running.stop(1))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def stream_call(
    channel: grpc.Channel, payloads: Iterable[bytes], timeout: float = 60
) -> tuple[grpc.StatusCode, str, list[streaming_pb2.StreamingTranscribeResponse]]:
    """One stream of raw request bytes (some deliberately invalid): status and responses."""
    call: grpc.StreamStreamMultiCallable[bytes, streaming_pb2.StreamingTranscribeResponse]
    call = channel.stream_stream(
        STREAM_METHOD,
        request_serializer=None,  # the payloads are bytes already
        response_deserializer=streaming_pb2.StreamingTranscribeResponse.FromString,
    )
    out: list[streaming_pb2.StreamingTranscribeResponse] = []
    try:
        for resp in call(iter(payloads), timeout=timeout):  # sent as the server reads
            out.append(resp)
        return OK, "", out
    except grpc.RpcError as err:
        return err.code(), err.details() or "", out


@dataclass
class Healthy:
    """Real speech streamed again and again beside the fuzzing (until `stop` is set)."""

    channel: grpc.Channel
    stop: threading.Event = field(default_factory=threading.Event)
    runs: list[tuple[grpc.StatusCode, str, float]] = field(default_factory=list)  # WER last
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.loop, name="healthy-streams")
        self.thread.start()

    def finish(self) -> list[tuple[grpc.StatusCode, str, float]]:
        """Let the stream under way end, then every stream's status and WER."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(240)
        return self.runs

    def loop(self) -> None:
        clip = dev_clips()[2]
        audio = chunks(pcm16(decode_16k(clip.path)), 3200)
        cfg = Req(config=Config(encoding=Enc.AUDIO_ENCODING_LINEAR16, sample_rate_hertz=16000))

        def requests() -> Iterator[bytes]:
            yield cfg.SerializeToString()
            for c in audio:
                time.sleep(0.1)  # real time, like a live meeting
                yield Req(audio_content=c).SerializeToString()

        while not self.stop.is_set():
            code, details, out = stream_call(self.channel, requests(), timeout=180)
            text = " ".join(latest_finals(r for resp in out for r in resp.results).values())
            self.runs.append((code, details, wer([clip.text], [text])))


@contextmanager
def real_speech_beside(server: ServerThread) -> Iterator[None]:
    """Real speech streams through `server` while the block runs; every such stream must
    come out as when alone (status OK, WER as on its own)."""
    healthy = Healthy(server.channel)
    healthy.start()
    try:
        yield
    finally:
        runs = healthy.finish()
    print(f"real streams beside the fuzzing: {[(c.name, round(w, 3)) for c, _, w in runs]}")
    assert runs
    for code, details, error_rate in runs:
        assert code == OK, details
        assert error_rate < 0.25


@dataclass
class Fuzz:
    servers: dict[str, ServerThread]  # by storage backend
    seeded: dict[str, str]  # a real transcript (segments, recording) on each, for unary calls
    seeded_words: list[str]

    @property
    def server(self) -> ServerThread:
        return self.servers["sqlite"]


def seed(server: ServerThread) -> str:
    """Stream a short real clip; the new transcript's id."""
    cfg = Config(encoding=PCM, sample_rate_hertz=16000, title="seeded", tags=["a"])
    audio = chunks(pcm16(decode_16k(dev_clips()[3].path)), 16000)
    payloads = [Req(config=cfg).SerializeToString()]
    payloads += [Req(audio_content=c).SerializeToString() for c in audio]
    code, details, out = stream_call(server.channel, payloads)
    assert code == OK, details
    return next(r.session.transcript_id for r in out if r.HasField("session"))


@pytest.fixture(scope="module")
def fuzz(
    engine: WhisperEngine, tmp_path_factory: pytest.TempPathFactory, dynamodb_local: DynamoDBLocal
) -> Iterator[Fuzz]:
    tmp = tmp_path_factory.mktemp("fuzz")
    ddb = StorageSettings(
        backend="dynamodb",
        data_dir=tmp / "ddb",
        dynamodb_endpoint=dynamodb_local.endpoint,
        dynamodb_create_tables=True,
        dynamodb_table_prefix="fuzz",
    )
    servers = {
        "sqlite": ServerThread(engine, StorageSettings(data_dir=tmp / "sqlite")),
        "dynamodb": ServerThread(engine, ddb),
    }
    try:
        seeded = {name: seed(server) for name, server in servers.items()}
        words = dev_clips()[3].text.lower().replace(",", "").replace(".", "").split()
        yield Fuzz(servers, seeded, words)
    finally:
        for server in servers.values():
            server.stop()


# ---- streams ---------------------------------------------------------------------------


class Msg:
    """One request as bytes, with what the server must make of it."""

    def __init__(self, kind: str, data: bytes, width: int = 0) -> None:
        self.kind = kind  # good_config | bad_config | config | audio | neither | huge | ...
        self.data = data
        self.width = width  # good_config: bytes per LINEAR16 frame; audio: its length

    def __repr__(self) -> str:  # short, for hypothesis' falsifying examples
        more = f"...({len(self.data)} bytes)" if len(self.data) > 48 else ""
        return f"Msg({self.kind!r}, {self.data[:48]!r}{more})"


def _varint(n: int) -> bytes:
    out = b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def _field(number: int, value: bytes) -> bytes:
    """A length-delimited field (wire type 2) by hand."""
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def with_bad_utf8(cfg: Config, field: int, bad: bytes) -> Msg:
    """`cfg` with a string field of invalid UTF-8 (protobuf refuses to serialize one, so
    the field is added to the serialized config by hand: for a singular string the last
    occurrence wins, for tags/hotwords it is one more element)."""
    return Msg("bad_utf8", _field(1, cfg.SerializeToString() + _field(field, bad)))


STRING_FIELDS = {"language_code": 4, "prompt": 7, "hotwords": 8, "title": 10, "tags": 11}
BAD_UTF8 = [
    b"\xff",  # never valid
    b"\xc3\x28",  # a 2-byte lead without its continuation
    b"\xed\xa0\x80",  # a UTF-16 surrogate, encoded
    b"\xc0\xaf",  # overlong "/"
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xe2\x82",  # truncated
    b"ok\x80tail",  # a stray continuation byte in the middle
]
ODD = "\u202e\u200b\ufeff\u0301\u05d0\u0645\U0001f399\ufe0f\U0010fffd\u0130\u00df\u2028\x7f\x85"
durations = st.builds(
    Duration, seconds=st.integers(-(10**9), 10**9), nanos=st.integers(-999_999_999, 999_999_999)
)
# Printable and odd Unicode (no control characters below U+0020, which config refuses).
fine_text = st.text(
    st.characters(min_codepoint=32, blacklist_categories=["Cs"]) | st.sampled_from(ODD)
)
texts = st.text(max_size=40) | st.text(min_size=150, max_size=3000) | fine_text
good_configs = st.builds(
    Config,
    encoding=st.just(Enc.AUDIO_ENCODING_LINEAR16),
    sample_rate_hertz=st.sampled_from([8000, 11025, 16000, 44100, 48000]),
    audio_channel_count=st.sampled_from([0, 1, 2, 3, 8]),
    language_code=st.sampled_from(["", "en", "en-US", "EN-gb", " en "]),
    interim_results=st.booleans(),
    enable_word_time_offsets=st.booleans(),
    prompt=fine_text.filter(lambda s: len(s) <= 1000),
    hotwords=st.lists(fine_text.filter(lambda s: len(s) <= 100), max_size=10),
    title=fine_text.filter(lambda s: len(s) <= 200),
    tags=st.lists(fine_text.filter(lambda s: len(s.strip()) <= 50), max_size=20),
    enable_voice_activity_events=st.booleans(),
)
any_configs = st.builds(
    Config,
    encoding=st.integers(-3, 12) | st.integers(-(2**31), 2**31 - 1),
    sample_rate_hertz=st.sampled_from([-1, 0, 1, 7999, 48001, 10**9, -(2**31), 2**31 - 1])
    | st.integers(-(2**31), 2**31 - 1),
    audio_channel_count=st.sampled_from([-1, 0, 9, 255, 2**31 - 1]) | st.integers(-5, 300),
    language_code=st.sampled_from(["", "en", "de", "xx", "-", "en-" * 50]) | st.text(max_size=20),
    interim_results=st.booleans(),
    prompt=texts,
    hotwords=st.lists(st.text(max_size=120), max_size=120),
    endpointing=st.builds(
        streaming_pb2.EndpointingConfig,
        silence_duration=durations,
        max_utterance_duration=durations,
    ),
    title=texts,
    tags=st.lists(texts, max_size=40),
    resume_transcript_id=st.just("") | st.text(max_size=40) | st.just("0" * 32),
    live=st.booleans(),
)


def _spoilers() -> list[Callable[[Config], None]]:
    """Ways to make a valid config invalid, one field at a time."""

    def setter(name: str, value: object) -> Callable[[Config], None]:
        return lambda c: setattr(c, name, value)

    def endpointing(name: str, seconds: int, nanos: int = 0) -> Callable[[Config], None]:
        return lambda c: getattr(c.endpointing, name).CopyFrom(
            Duration(seconds=seconds, nanos=nanos)
        )

    out = [setter("sample_rate_hertz", v) for v in (-1, 0, 7999, 48001, 10**9, -(2**31))]
    out += [setter("audio_channel_count", v) for v in (-1, 9, 2**31 - 1)]
    out += [setter("encoding", v) for v in (7, 99, -1, 2**31 - 1)]
    out += [setter("language_code", v) for v in ("de", "xx-EN", "fr-en")]
    out += [setter("title", v) for v in ("x" * 201, "a\x00b", "line\nbreak", "\x1b[31m")]
    out += [setter("prompt", "p" * 1001)]
    out += [lambda c: c.tags.extend(["t"] * 21), lambda c: c.tags.append("t" * 51)]
    out += [lambda c: c.tags.append("a\rb"), lambda c: c.hotwords.extend(["h"] * 101)]
    out += [lambda c: c.hotwords.append("h" * 101)]
    out += [endpointing("silence_duration", 0, 50_000_000), endpointing("silence_duration", 11)]
    out += [endpointing("silence_duration", -1), endpointing("max_utterance_duration", 1)]
    out += [
        endpointing("max_utterance_duration", 26),
        endpointing("max_utterance_duration", -(10**9)),
    ]
    return out


SPOILERS = _spoilers()


def spoiled(cfg: Config, spoil: Callable[[Config], None]) -> Msg:
    bad = Config()
    bad.CopyFrom(cfg)
    spoil(bad)
    return Msg("bad_config", Req(config=bad).SerializeToString())


def good(cfg: Config) -> Msg:
    return Msg(
        "good_config", Req(config=cfg).SerializeToString(), 2 * (cfg.audio_channel_count or 1)
    )


def audio(data: bytes) -> Msg:
    return Msg("audio", Req(audio_content=data).SerializeToString(), len(data))


def huge(size: int) -> Msg:
    return Msg("huge", Req(audio_content=b"\x00" * size).SerializeToString())


def truncated(cfg: Config, cut: int) -> Msg:
    data = Req(config=cfg).SerializeToString()
    return Msg("junk", data[: max(1, len(data) - cut)])  # usually corrupt, sometimes valid


messages = st.one_of(
    good_configs.map(good),
    any_configs.map(lambda c: Msg("config", Req(config=c).SerializeToString())),
    st.builds(spoiled, good_configs, st.sampled_from(SPOILERS)),
    st.binary(max_size=4000).map(audio),
    st.just(audio(b"")),
    st.just(Msg("neither", Req().SerializeToString())),  # no config, no audio: empty bytes
    st.sampled_from([MAX_MESSAGE + 1, 2 * MAX_MESSAGE, 4 * MAX_MESSAGE + 100]).map(huge),
    st.builds(
        with_bad_utf8,
        good_configs | any_configs,
        st.sampled_from(sorted(STRING_FIELDS.values())),
        st.sampled_from(BAD_UTF8),
    ),
    st.binary(min_size=1, max_size=200).map(lambda b: Msg("junk", b)),  # not protobuf (mostly)
    st.builds(truncated, good_configs, st.integers(1, 20)),
)
sequences: st.SearchStrategy[list[Msg]] = st.just([]) | st.builds(
    lambda first, rest: [first, *rest],
    st.one_of(good_configs.map(good), good_configs.map(good), messages),  # mostly valid first
    st.lists(messages, max_size=5),
)


def expected(msgs: list[Msg]) -> grpc.StatusCode | None:
    """The status the server must answer, when the sequence determines it (else None)."""
    if not msgs:
        return INVALID  # the stream ended before its config
    if msgs[0].kind in {"audio", "neither", "huge", "bad_utf8", "bad_config"}:
        return INVALID  # the first message must be a (decodable, valid) config
    if msgs[0].kind != "good_config":
        return None  # an absurd config or junk: any clear answer
    audio_bytes = 0
    for m in msgs[1:]:
        if m.kind in {"good_config", "bad_config", "config", "neither", "bad_utf8"}:
            return INVALID  # config twice, an empty message, undecodable bytes
        if m.kind == "huge":
            return EXHAUSTED
        if m.kind == "junk":
            return None
        audio_bytes += m.width
    return OK if audio_bytes % msgs[0].width == 0 else INVALID  # stray bytes at the end


def check_stream(server: ServerThread, msgs: list[Msg], tried: Counter[str]) -> None:
    tried["streams"] += 1
    tried["stream messages"] += len(msgs)
    code, details, _ = stream_call(server.channel, [m.data for m in msgs])
    want = {expected(msgs)}
    if any(len(m.data) > 4 * MAX_MESSAGE for m in msgs):
        want.add(EXHAUSTED)  # grpc itself refuses a message over the transport's cap
    assert code in CLEAR, f"{code}: {details}"
    assert None in want or code in want, f"{code} instead of {want}: {details}"
    if code != OK:
        assert len(details) > 15, f"{code} without a useful message: {details!r}"


G = good(Config(encoding=PCM, sample_rate_hertz=16000))


def test_any_request_sequence_gets_a_clear_answer(fuzz: Fuzz) -> None:
    tried: Counter[str] = Counter()

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(msgs=sequences)
    @example(msgs=[])  # empty stream
    @example(msgs=[audio(b"\x00" * 3200), G])  # audio before config
    @example(msgs=[G, audio(b"\x00" * 3200), G])  # config twice
    @example(msgs=[G, audio(b""), audio(b"\x00" * 3200), audio(b"")])  # empty audio messages
    @example(msgs=[G, huge(MAX_MESSAGE + 1)])  # just over the limit
    @example(msgs=[G, huge(4 * MAX_MESSAGE + 100)])  # over the transport's cap as well
    @example(msgs=[G, audio(b"\x00" * 3)])  # half a sample
    @example(msgs=[with_bad_utf8(Config(encoding=PCM, sample_rate_hertz=16000), 10, b"\xff\xfe")])
    @example(msgs=[with_bad_utf8(Config(encoding=PCM, sample_rate_hertz=16000), 11, b"\xc3\x28")])
    @example(msgs=[G, with_bad_utf8(Config(), 11, b"\xed\xa0\x80")])
    @example(msgs=[spoiled(Config(encoding=PCM, sample_rate_hertz=16000), SPOILERS[0])])
    @example(msgs=[good(Config(encoding=PCM, sample_rate_hertz=16000, tags=[ODD * 3]))])
    @example(
        msgs=[
            Msg(
                "bad_config",
                Req(config=Config(encoding=PCM, sample_rate_hertz=10**9)).SerializeToString(),
            )
        ]
    )
    def sequence(msgs: list[Msg]) -> None:
        check_stream(fuzz.server, msgs, tried)

    with real_speech_beside(fuzz.server):
        sequence()
    print(f"fuzzed streams: {tried['streams']} ({tried['stream messages']} messages)")
    assert tried["streams"] >= 120  # hypothesis ran the property on this many inputs


# ---- unary calls -----------------------------------------------------------------------

SEEDED = "<seeded>"  # replaced by the real transcript's id at call time
other_ids = (
    st.just("")
    | st.text(max_size=40)
    | st.sampled_from(["0" * 32, "../../etc/passwd", "' OR 1=1 --", "T#x", "%00", "*", " "])
)
ids = st.just(SEEDED) | other_ids
page_sizes = st.sampled_from([-1, 0, 1, 100, 101]) | st.integers(-(2**31), 2**31 - 1)
tokens = st.just("") | st.text(max_size=40) | st.sampled_from(["e30", "W10", "bnVsbA", "!!"])
OPERATORS = ['"', "OR", "AND", "NOT", "NEAR", "*", "(", ")", ":", "-", "^", "'", "\\", "%", "_"]
INJECTIONS = ["'; DROP TABLE transcripts; --", '" OR ""="', "a' OR 'a'='a", "{$gt: ''}", "\x00"]
YEAR_1, YEAR_9999 = -62135596800, 253402300799  # the range a Timestamp may hold


def time_ranges(backend: str) -> st.SearchStrategy[tuple[Timestamp | None, Timestamp | None]]:
    """created_after / created_before: each optional, anywhere in the valid range. For
    DynamoDB only ordered ranges from 1970 on (see the dynamodb-list-* cases in FOUND)."""
    lo = 0 if backend == "dynamodb" else YEAR_1
    times = st.builds(
        Timestamp, seconds=st.integers(lo, YEAR_9999), nanos=st.integers(0, 999_999_999)
    )
    pairs = st.tuples(st.none() | times, st.none() | times)
    return pairs.map(_ordered) if backend == "dynamodb" else pairs


def _ordered(
    pair: tuple[Timestamp | None, Timestamp | None],
) -> tuple[Timestamp | None, Timestamp | None]:
    a, b = pair
    if a is None or b is None or (a.seconds, a.nanos) <= (b.seconds, b.nanos):
        return pair
    return b, a


def queries(words: list[str]) -> st.SearchStrategy[str]:
    return (
        st.text(max_size=60)
        | st.sampled_from(INJECTIONS)
        | st.lists(st.sampled_from(words + OPERATORS), min_size=1, max_size=6).map(" ".join)
    )


def unary_requests(words: list[str], backend: str) -> st.SearchStrategy[tuple[str, Message]]:
    return st.one_of(
        st.builds(
            lambda n, t, tags, times: (
                "ListTranscripts",
                pb.ListTranscriptsRequest(
                    page_size=n,
                    page_token=t,
                    tags=tags,
                    created_after=times[0],
                    created_before=times[1],
                ),
            ),
            page_sizes,
            tokens,
            st.lists(texts, max_size=25),
            time_ranges(backend),
        ),
        st.builds(
            lambda q, n, t: (
                "SearchTranscripts",
                pb.SearchTranscriptsRequest(query=q, page_size=n, page_token=t),
            ),
            queries(words),
            page_sizes,
            tokens,
        ),
        st.builds(lambda i: ("GetTranscript", pb.GetTranscriptRequest(transcript_id=i)), ids),
        st.builds(
            lambda i, title, tags, names, paths: (
                "UpdateTranscript",
                pb.UpdateTranscriptRequest(
                    transcript=pb.Transcript(id=i, title=title, tags=tags, speaker_names=names),
                    update_mask=FieldMask(paths=paths),
                ),
            ),
            ids,
            texts,
            st.lists(texts, max_size=25),
            st.dictionaries(st.text(max_size=20), st.text(max_size=60), max_size=5),
            st.lists(
                st.sampled_from(["title", "tags", "speaker_names", "status", "x", ""]), max_size=3
            ),
        ),
        st.builds(
            lambda i: ("DeleteTranscript", pb.DeleteTranscriptRequest(transcript_id=i)),
            other_ids,
        ),
        st.builds(
            lambda i, f: (
                "ExportTranscript",
                pb.ExportTranscriptRequest(transcript_id=i, format=f),
            ),
            ids,
            st.integers(-1, 9) | st.integers(-(2**31), 2**31 - 1),
        ),
        st.builds(
            lambda i, start, length: (
                "GetRecording",
                pb.GetRecordingRequest(transcript_id=i, range_start=start, range_length=length),
            ),
            ids,
            st.integers(-(2**63), 2**63 - 1) | st.integers(-1, 200_000),
            st.integers(-(2**63), 2**63 - 1) | st.integers(-1, 200_000),
        ),
    )


RESPONSES: dict[str, Callable[[bytes], Message]] = {
    "ListTranscripts": pb.ListTranscriptsResponse.FromString,
    "SearchTranscripts": pb.SearchTranscriptsResponse.FromString,
    "GetTranscript": pb.GetTranscriptResponse.FromString,
    "UpdateTranscript": pb.UpdateTranscriptResponse.FromString,
    "DeleteTranscript": pb.DeleteTranscriptResponse.FromString,
    "ExportTranscript": pb.ExportTranscriptResponse.FromString,
    "GetRecording": pb.GetRecordingResponse.FromString,
}


def unary_call(
    channel: grpc.Channel, method: str, payload: bytes
) -> tuple[grpc.StatusCode, str, list[Message]]:
    path = f"/transcribe.v1.TranscriptService/{method}"
    try:
        if method == "GetRecording":
            stream: grpc.UnaryStreamMultiCallable[bytes, Message]
            stream = channel.unary_stream(path, None, RESPONSES[method])
            return OK, "", list(stream(payload, timeout=30))
        unary: grpc.UnaryUnaryMultiCallable[bytes, Message]
        unary = channel.unary_unary(path, None, RESPONSES[method])
        return OK, "", [unary(payload, timeout=30)]
    except grpc.RpcError as err:
        return err.code(), err.details() or "", []


def check_unary(server: ServerThread, method: str, payload: bytes, request: Message) -> None:
    code, details, _ = unary_call(server.channel, method, payload)
    assert code in CLEAR, f"{method} {payload[:100]!r}: {code} {details}"
    if code != OK:
        assert len(details) > 10, f"{method}: {code} {details!r}"
    if code == OK and isinstance(request, pb.UpdateTranscriptRequest):
        # What was accepted is what is stored and read back.
        want, paths = request.transcript, request.update_mask.paths
        get = pb.GetTranscriptRequest(transcript_id=want.id).SerializeToString()
        got = unary_call(server.channel, "GetTranscript", get)[2][0]
        assert isinstance(got, pb.GetTranscriptResponse)
        if "title" in paths:
            assert got.transcript.title == want.title
        if "tags" in paths:
            assert list(got.transcript.tags) == list(
                dict.fromkeys(t.strip() for t in want.tags if t.strip())
            )
        if "speaker_names" in paths:
            assert dict(got.transcript.speaker_names) == dict(want.speaker_names)


def _resolve(request: Message, seeded: str) -> Message:
    for holder in (request, getattr(request, "transcript", None)):
        for name in ("transcript_id", "id"):
            if holder is not None and getattr(holder, name, None) == SEEDED:
                setattr(holder, name, seeded)
    return request


BACKENDS = st.sampled_from(["sqlite", "dynamodb"])


def test_any_unary_request_gets_a_clear_answer(fuzz: Fuzz) -> None:
    tried: list[str] = []

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def unary(data: st.DataObject) -> None:
        backend = data.draw(BACKENDS, label="backend")
        method, request = data.draw(unary_requests(fuzz.seeded_words, backend), label="request")
        request = _resolve(request, fuzz.seeded[backend])
        tried.append(method)
        check_unary(fuzz.servers[backend], method, request.SerializeToString(), request)

    with real_speech_beside(fuzz.server):
        unary()
    print(f"fuzzed unary calls: {len(tried)} {sorted(Counter(tried).items())}")
    assert len(tried) >= 200


def test_any_unary_bytes_get_a_clear_answer(fuzz: Fuzz) -> None:
    """Bytes that are not (valid) protobuf: INVALID_ARGUMENT, or an answer if they parse."""
    tried: list[str] = []

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        backend=BACKENDS, method=st.sampled_from(sorted(RESPONSES)), payload=st.binary(max_size=200)
    )
    def unary_bytes(backend: str, method: str, payload: bytes) -> None:
        tried.append(method)
        check_unary(fuzz.servers[backend], method, payload, pb.GetTranscriptRequest())

    unary_bytes()
    print(f"fuzzed unary byte strings: {len(tried)}")
    assert len(tried) >= 48


def _token(state: object) -> str:
    """A page token made the way the server makes them (base64 of JSON), with any content."""
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def found(backend: str, request: Message, case: str, bug: str) -> Any:
    """One input the fuzzing found answered INTERNAL ("internal error; the server log has
    the details") instead of a clear status; `bug` says what was wrong (now fixed), and
    the case stays as a regression test."""
    del bug
    method = type(request).__name__.removesuffix("Request")
    return pytest.param(backend, method, request, id=case)


FOUND = [
    found(
        "sqlite",
        pb.ListTranscriptsRequest(created_after=Timestamp(seconds=10**12)),
        "list-created_after-year-31690",
        "service/convert.py from_timestamp: Timestamp.ToDatetime raises ValueError for "
        "seconds outside 0001..9999",
    ),
    found(
        "dynamodb",
        pb.ListTranscriptsRequest(created_before=Timestamp(nanos=-1)),
        "list-created_before-negative-nanos",
        "service/convert.py from_timestamp: Timestamp.ToDatetime raises ValueError for "
        "nanos outside 0..999999999",
    ),
    found(
        "dynamodb",
        pb.ListTranscriptsRequest(created_before=Timestamp(seconds=-1)),
        "dynamodb-list-created_before-1969",
        "service/storage/dynamodb.py list_transcripts: a time before 1970 makes a negative "
        "sort key ('-000…'), below '000…': DynamoDB's ValidationException (BETWEEN upper "
        "bound below lower bound) is not turned into INVALID_ARGUMENT",
    ),
    found(
        "dynamodb",
        pb.ListTranscriptsRequest(
            created_after=Timestamp(seconds=2000), created_before=Timestamp(seconds=1000)
        ),
        "dynamodb-list-created_after-later-than-created_before",
        "service/storage/dynamodb.py list_transcripts: an empty range (after > before) is "
        "sent to DynamoDB as BETWEEN hi AND lo: ValidationException, not an empty page",
    ),
    found(
        "sqlite",
        pb.ListTranscriptsRequest(page_token=_token({"c": [1]})),
        "sqlite-list-token-holding-a-list",
        "service/storage/sqlite.py list_transcripts binds the token's 'c' unchecked: "
        "sqlite3 cannot bind a list (ProgrammingError)",
    ),
    found(
        "sqlite",
        pb.SearchTranscriptsRequest(query="every", page_token=_token({"o": 10**30})),
        "sqlite-search-token-offset-1e30",
        "service/storage/sqlite.py search uses the token's 'o' offset unchecked: "
        "OverflowError, too large for SQLite",
    ),
    found(
        "dynamodb",
        pb.ListTranscriptsRequest(page_token=_token({"c": 1.5})),
        "dynamodb-list-token-holding-a-float",
        "service/storage/dynamodb.py list_transcripts: boto3 refuses a float in "
        "ExclusiveStartKey with TypeError, which is not the ClientError it handles",
    ),
    found(
        "dynamodb",
        pb.SearchTranscriptsRequest(query="every", page_token=_token({"pk": "x", "sk": "y"})),
        "dynamodb-search-foreign-token",
        "service/storage/dynamodb.py search does not turn DynamoDB's ValidationException "
        "for a start key it did not make into INVALID_ARGUMENT (list_transcripts does)",
    ),
    found(
        "dynamodb",
        pb.UpdateTranscriptRequest(
            transcript=pb.Transcript(id="x", speaker_names={"": ""}),
            update_mask=FieldMask(paths=["speaker_names"]),
        ),
        "dynamodb-update-empty-speaker-label",
        "service/transcripts_servicer.py UpdateTranscript passed an empty speaker_names key "
        "to the store: DynamoDB's ValidationException (empty map key)",
    ),
]


@pytest.mark.parametrize(("backend", "method", "request_"), FOUND)
def test_found_inputs_get_a_clear_answer(
    fuzz: Fuzz, backend: str, method: str, request_: Message
) -> None:
    """Invalid timestamps, tokens and labels: INVALID_ARGUMENT; time ranges nothing can fall in
    (before 1970, or after > before): an empty page."""
    request = request_.SerializeToString()
    code, details, response = unary_call(fuzz.servers[backend].channel, method, request)
    assert code in (INVALID, OK), f"{code} {details}"
    if code == OK:  # only a list can answer OK here, with an empty page
        assert not list(cast(pb.ListTranscriptsResponse, response[0]).transcripts)
