"""Checks on what browsers send: every malformed value is a 400 naming its field.

Anything that reaches gRPC is a valid protobuf value (an int32 in range, a list of
strings, printable ASCII metadata), so no client input can raise inside a handler.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from web_bridge.guard import bad_request

INT32_MAX = 2**31 - 1
MAX_KEY_CHARS = 512


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; not UTF-8, not JSON, too deeply nested or not an object
    are all 400 (the body size is capped by the app's client_max_size: 413)."""
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request("body", f"not UTF-8 (byte {exc.start})") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request("body", f"not JSON ({exc.msg} at {exc.pos})") from None
    except RecursionError:
        raise bad_request("body", "nested too deeply") from None
    if not isinstance(body, dict):
        raise bad_request("body", "expected a JSON object")
    return body


def string(body: dict[str, Any], field: str, max_chars: int = 1000) -> str:
    value = body[field]
    if not isinstance(value, str):
        raise bad_request(field, "expected a string")
    if len(value) > max_chars:
        raise bad_request(field, f"longer than {max_chars} characters")
    return value


def string_list(body: dict[str, Any], field: str, max_items: int = 100) -> list[str]:
    value = body[field]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise bad_request(field, "expected a list of strings")
    if len(value) > max_items:
        raise bad_request(field, f"more than {max_items} items")
    return value


def string_map(
    body: dict[str, Any], field: str, max_items: int = 50, max_key: int = 16, max_value: int = 100
) -> dict[str, str]:
    """An object of short string keys to string values, e.g. speaker label -> name."""
    value = body[field]
    if not isinstance(value, dict):
        raise bad_request(field, "expected an object of strings")
    if len(value) > max_items:
        raise bad_request(field, f"more than {max_items} entries")
    for k, v in value.items():
        if not k or len(k) > max_key:
            raise bad_request(field, f"keys must be 1 to {max_key} characters")
        if not isinstance(v, str):
            raise bad_request(f"{field}.{k[:max_key]}", "expected a string")
        if len(v) > max_value:
            raise bad_request(f"{field}.{k}", f"longer than {max_value} characters")
    return {k: v.strip() for k, v in value.items()}


def only_fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(unknown[0], f"unknown field; expected {', '.join(sorted(allowed))}")


def api_key(body: dict[str, Any]) -> str:
    """A key as gRPC metadata can carry it: printable ASCII (spaces inside allowed)."""
    key = body.get("api_key")
    if not isinstance(key, str) or not key.strip():
        raise bad_request("api_key", 'expected JSON {"api_key": "..."}')
    key = key.strip()
    if len(key) > MAX_KEY_CHARS:
        raise bad_request("api_key", f"longer than {MAX_KEY_CHARS} characters")
    if not all(" " <= c <= "~" for c in key):
        raise bad_request("api_key", "must be printable ASCII (no control characters)")
    return key


def query_int(request: web.Request, field: str, default: int) -> int:
    """A non-negative int32 query parameter (0 asks for the service's default)."""
    raw = request.query.get(field, "")
    if raw == "":
        return default
    if not raw.isascii() or not raw.isdigit():
        raise bad_request(field, f"expected a whole number, got {raw[:20]!r}")
    if len(raw) > 10 or int(raw) > INT32_MAX:
        raise bad_request(field, f"must be at most {INT32_MAX}")
    return int(raw)
