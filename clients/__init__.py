"""Clients of the transcribe.v1 API: the Python library and CLI, and generated clients."""
