"""The live transcription gRPC service: model engine, streaming policy, storage."""
