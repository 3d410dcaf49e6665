"""Session cookies that carry the API key sealed, not in the clear.

The service authenticates every call by API key, so a stateless bridge must get the
key back from each request. The cookie holds it encrypted and authenticated with the
bridge's session secret: the value alone is useless against the gRPC port, cannot be
forged or altered, and expires. Bridges given the same secret accept each other's
cookies (restart or run several); changing the secret signs everyone out.

Construction (standard library only; `cryptography` is not a dependency): two keys
derived from the secret with HMAC-SHA256; a one-time pad per token from HMAC-SHA256 in
counter mode over a random 16-byte nonce (the SP 800-108 counter-mode KDF), XORed with
the key; then HMAC-SHA256 over version, expiry, nonce and ciphertext (encrypt-then-MAC),
checked in constant time before anything is decrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import time
from collections.abc import Callable

VERSION = b"\x01"
NONCE = 16
TAG = 32
HEADER = len(VERSION) + 8 + NONCE


def _prf(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


class SessionSealer:
    """Seals an API key into a cookie value and opens it again (None if not genuine)."""

    def __init__(
        self, secret: bytes, lifetime_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._enc = _prf(secret, b"transcribe-bridge session v1: encrypt")
        self._mac = _prf(secret, b"transcribe-bridge session v1: authenticate")
        self.lifetime_s = lifetime_s
        self._clock = clock

    def _pad(self, nonce: bytes, n: int) -> bytes:
        blocks = (n + 31) // 32
        return b"".join(_prf(self._enc, nonce + struct.pack(">I", i)) for i in range(blocks))[:n]

    def _xor(self, nonce: bytes, data: bytes) -> bytes:
        return bytes(a ^ b for a, b in zip(data, self._pad(nonce, len(data)), strict=True))

    def seal(self, api_key: str) -> str:
        nonce = secrets.token_bytes(NONCE)
        expiry = struct.pack(">Q", int(self._clock() + self.lifetime_s))
        body = VERSION + expiry + nonce + self._xor(nonce, api_key.encode())
        token = body + _prf(self._mac, body)
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def open(self, token: str) -> str | None:
        """The sealed key, or None for anything forged, altered, expired or malformed."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) <= HEADER + TAG or not raw.startswith(VERSION):
            return None
        body, tag = raw[:-TAG], raw[-TAG:]
        if not hmac.compare_digest(tag, _prf(self._mac, body)):
            return None
        (expiry,) = struct.unpack(">Q", body[1:9])
        if expiry <= self._clock():
            return None
        nonce, cipher = body[9:HEADER], body[HEADER:]
        plain = self._xor(nonce, cipher)
        try:
            return plain.decode()
        except UnicodeDecodeError:
            return None
