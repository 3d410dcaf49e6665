"""Session cookies that carry the API key sealed, not in the clear.

The service authenticates every call by API key, so a stateless bridge must get the
key back from each request. The cookie holds it encrypted and authenticated with the
bridge's session secret: the value alone is useless against the gRPC port, cannot be
forged or altered, and expires. Bridges given the same secret accept each other's
cookies (restart or run several); changing the secret signs everyone out.

Construction, from the `cryptography` package (no hand-written cryptography): an
AES-256-GCM key derived from the secret with HKDF-SHA256; each token is version,
expiry, a random 96-bit nonce and the GCM ciphertext of the key, with version and
expiry as associated data, so altering any byte (the expiry too) fails the tag check.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import struct
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"\x02"
"""Version 1 was a hand-written HMAC construction; its cookies are refused (sign in again)."""
NONCE = 12
TAG = 16
HEADER = len(VERSION) + 8  # version and expiry: sent in the clear, authenticated
INFO = b"transcribe-bridge session v2: AES-256-GCM"


class SessionSealer:
    """Seals an API key into a cookie value and opens it again (None if not genuine)."""

    def __init__(
        self, secret: bytes, lifetime_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(secret)
        self._aead = AESGCM(key)
        self.lifetime_s = lifetime_s
        self._clock = clock

    def seal(self, api_key: str) -> str:
        nonce = secrets.token_bytes(NONCE)
        header = VERSION + struct.pack(">Q", int(self._clock() + self.lifetime_s))
        token = header + nonce + self._aead.encrypt(nonce, api_key.encode(), header)
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def open(self, token: str) -> str | None:
        """The sealed key, or None for anything forged, altered, expired or malformed."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) <= HEADER + NONCE + TAG or not raw.startswith(VERSION):
            return None
        header, nonce, cipher = raw[:HEADER], raw[HEADER : HEADER + NONCE], raw[HEADER + NONCE :]
        try:
            plain = self._aead.decrypt(nonce, cipher, header)
        except InvalidTag:
            return None
        (expiry,) = struct.unpack(">Q", header[1:])
        if expiry <= self._clock():
            return None
        try:
            return plain.decode()
        except UnicodeDecodeError:
            return None
