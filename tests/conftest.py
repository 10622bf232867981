"""Shared test configuration."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Network-namespace fixtures (netns, netns_factory) for tests against the kernel's TCP.
pytest_plugins = ["tests.netns"]

# CI: deterministic examples (a red run is reproducible from the log) and no per-example
# deadline (two shared cores, timing jitter is not a bug). Locally: random exploration.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(
    "ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev")
)
