"""The streaming policy, one module per concern (see policy.py for how they fit).

speech   the speech gate and its events, and the stream clock
window   the rolling buffer a decode covers, and the history second passes read
filters  what of a decode's words to believe (named thresholds)
commit   agreement of consecutive decodes, and segment indexes
revise   the second pass and its word alignment
policy   `Policy`: the phase machine that decides which decode runs next
config   `PolicyConfig`, built from the server's settings
jobs     the decodes asked for and the results sent
words    word helpers they share
"""

from service.audio import SAMPLE_RATE
from service.policy.config import PolicyConfig, policy_config
from service.policy.jobs import DecodeJob, JobKind, ResultUpdate, RevisionTarget
from service.policy.policy import Decoding, Phase, Policy
from service.policy.speech import FRAME, SpeechEvent

__all__ = [
    "FRAME",
    "SAMPLE_RATE",
    "DecodeJob",
    "Decoding",
    "JobKind",
    "Phase",
    "Policy",
    "PolicyConfig",
    "ResultUpdate",
    "RevisionTarget",
    "SpeechEvent",
    "policy_config",
]
