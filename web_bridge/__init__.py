"""The browser bridge: serves the page and relays WebSocket audio to the gRPC service."""
