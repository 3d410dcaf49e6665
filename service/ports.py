"""Whether a TCP port can be listened on, asked before a server binds it.

gRPC on Linux binds with SO_REUSEPORT by default, so a second server on a busy
port starts and the kernel splits clients between two servers with two stores.
Servers here turn that off (`grpc.so_reuseport` = 0); asking first, as gRPC
would bind (SO_REUSEADDR, every address the host resolves to), turns a busy port
into one clear line before anything slow (the model) is loaded, instead of a
gRPC core log line and a traceback.
"""

from __future__ import annotations

import errno
import socket


def bind_error(host: str, port: int) -> str:
    """Why (host, port) cannot be listened on, e.g. 'the port is in use'; '' if it can.

    Port 0 (any free port) always can. A host name counts as busy when any of its
    addresses is: gRPC would otherwise serve on the free one alone.
    """
    if port == 0:
        return ""
    try:
        infos = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        return f"the host does not resolve ({exc.strerror or exc})"
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return "the port is in use"
                return str(exc.strerror or exc).lower()
    return ""
