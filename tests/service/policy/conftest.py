"""The policy's tests run the production configuration: the server's default settings
through the same builder the servicer uses (tests that need another value say so with
`dataclasses.replace`)."""

from __future__ import annotations

import pytest

from service.config import build_settings
from service.policy import PolicyConfig, policy_config


@pytest.fixture
def cfg() -> PolicyConfig:
    return policy_config(build_settings([], environ={}))
