"""Every bridge setting comes from a flag or TRANSCRIBE_BRIDGE_* and is checked at start:
a bad value stops the bridge with a message naming the flag, not at the first request."""

from __future__ import annotations

import pytest

from web_bridge.config import build_bridge_settings


def test_settings_come_from_flags_over_environment() -> None:
    env = {
        "TRANSCRIBE_BRIDGE_ALLOWED_HOSTS": "a.example, b.example",
        "TRANSCRIBE_BRIDGE_TRUSTED_PROXIES": "10.0.0.0/8,::1",
        "TRANSCRIBE_BRIDGE_AUTH": "api-key",
        "TRANSCRIBE_BRIDGE_TLS_CERT": "cert.pem",
        "TRANSCRIBE_BRIDGE_TLS_KEY": "key.pem",
        "TRANSCRIBE_BRIDGE_SESSION_SECRET": "x" * 32,
        "TRANSCRIBE_BRIDGE_SESSION_HOURS": "2.5",
        "TRANSCRIBE_BRIDGE_MAX_BUFFERED_BYTES": "65536",
        "TRANSCRIBE_BRIDGE_HEARTBEAT_SECONDS": "5",
    }
    s = build_bridge_settings([], env)
    assert s.allowed_hosts == ("a.example", "b.example")
    assert s.trusted_proxies == ("10.0.0.0/8", "::1")
    assert (s.auth, s.tls_cert, s.tls_key) == ("api-key", "cert.pem", "key.pem")
    assert (s.session_secret, s.session_hours, s.max_buffered_bytes) == ("x" * 32, 2.5, 65536)
    assert s.heartbeat_s == 5.0
    assert "x" * 32 not in repr(s)  # secrets stay out of logs
    s = build_bridge_settings(["--allowed-host", "c.example", "--auth", "none"], env)
    assert (s.allowed_hosts, s.auth) == (("c.example",), "none")
    default = build_bridge_settings([], {})
    assert (default.auth_mode, default.tls) == ("none", False)  # localhost: as the server
    assert default.heartbeat_s == 20.0
    assert build_bridge_settings(["--heartbeat-seconds", "1.5"], env).heartbeat_s == 1.5
    assert build_bridge_settings(["--host", "0.0.0.0"], {}).auth_mode == "api-key"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--auth", "maybe"], "--auth"),
        (["--tls-cert", "cert.pem"], "--tls-key"),
        (["--trusted-proxy", "proxy.internal"], "--trusted-proxy"),
        (["--session-secret", "short"], "--session-secret"),
        (["--session-hours", "0"], "--session-hours"),
        (["--allowed-host", "https://a.example"], "--allowed-host"),
        (["--allowed-origin", "a.example"], "--allowed-origin"),
        (["--max-buffered-bytes", "0"], "buffer"),
        (["--port", "70000"], "--port"),
        (["--heartbeat-seconds", "0"], "--heartbeat-seconds"),
        (["--heartbeat-seconds", "inf"], "--heartbeat-seconds"),
    ],
)
def test_a_bad_setting_stops_the_bridge_at_start(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_bridge_settings(argv, {})
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err
