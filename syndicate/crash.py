"""Named points where the crash-safety tests kill -9 the process (and nothing else does)."""

from __future__ import annotations

import os
import signal

# Tests set this to a step name to kill -9 the process there (crash-safety tests only).
CRASH_AT_ENV = "SYNDICATE_TEST_CRASH_AT"


def crash_point(step: str) -> None:
    if os.environ.get(CRASH_AT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
