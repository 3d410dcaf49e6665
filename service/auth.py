"""Who is calling: the principal that owns transcripts.

With authentication off (the local default) every caller is the principal
"local". API-key authentication (issue 7) plugs in here, so servicers only ever
ask `principal_of(context)`.
"""

from __future__ import annotations

from typing import Any

import grpc

LOCAL_PRINCIPAL = "local"
PRINCIPAL_METADATA_KEY = "x-transcribe-principal"


def principal_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The principal of the current call, as set by the auth interceptor."""
    del context
    return LOCAL_PRINCIPAL
