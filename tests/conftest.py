"""Shared test configuration."""

from __future__ import annotations

import os
from importlib.metadata import entry_points

from hypothesis import HealthCheck, settings

# Network-namespace fixtures (netns, netns_factory) for tests against the kernel's TCP;
# pytester runs the plugin tests' inner sessions.
pytest_plugins = ["tests.netns", "pytester"]

# trio_tcp6's own pytest plugin (tcp6_net, tcp6_stacks): pytest loads it through its
# entry point once the package is installed with its metadata; from a checkout whose
# install predates the entry point, load it here (loading it twice would be an error).
_PLUGIN = "trio_tcp6.testing.plugin"
if not any(ep.value == _PLUGIN for ep in entry_points(group="pytest11")):
    pytest_plugins.append(_PLUGIN)

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
