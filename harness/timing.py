"""Timing profiles: how long AWS's own work takes, replayed by the harness at the Step Functions time scale.

The harness runs training jobs, endpoints, builds and Lambda workers for real, and locally they start in
seconds. On AWS, instances are provisioned first: a flow whose retry budgets fit local timing can run
out of them there. A profile names AWS's durations; `Timing.delay_s(...)` gives each one multiplied by
the running emulator's time scale (harness/context.py `StepFunctionsTiming`), the same factor as the
state machine's Wait states and Retry intervals, so a scenario replays AWS-like timing in seconds and
the state machine's waits and its services' durations keep their proportions.

- `fast` (the default): nothing is added; every part takes what it takes here.
- `aws`: the figures below, each with its source. They are typical values, not bounds; AWS documents
  few of them, so most come from published measurements.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Final, Literal

ProfileName = Literal["fast", "aws"]
PROFILE_NAMES: Final = ("fast", "aws")


@dataclass(frozen=True)
class TimingProfile:
    """Durations in seconds of AWS's side of each step, at real time (before the time scale)."""

    name: str
    # CreateTrainingJob to Downloading: instances launched and prepared (secondary status Starting).
    training_provisioning_s: float = 0.0
    # CreateEndpoint to the container starting on its instance (the endpoint stays Creating).
    endpoint_create_s: float = 0.0
    # UpdateEndpoint to the new fleet's container starting (the endpoint stays Updating).
    endpoint_update_s: float = 0.0
    # A CodeBuild build's QUEUED and PROVISIONING phases, before DOWNLOAD_SOURCE.
    codebuild_provisioning_s: float = 0.0
    # A Lambda cold start's init at least this long (a local worker's start already counts).
    lambda_cold_start_s: float = 0.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not 0 <= value <= 3600:
                raise ValueError(f"{item.name} must be in [0, 3600] s, got {value}")


FAST: Final = TimingProfile(name="fast")
AWS: Final = TimingProfile(
    name="aws",
    # AWS ML Blog, "Best practices for Amazon SageMaker Training Managed Warm Pools": a cold start
    # provisions instances for every job (minutes; warm pools bring it under 20 s); the SageMaker
    # developer guide's secondary statuses (Starting: "Launching requested ML instances", "Preparing
    # the instances for training"). 150 s is the typical cold start of a single CPU instance as
    # SageMaker users report it: an estimate, AWS publishes no figure.
    training_provisioning_s=150.0,
    # hashicorp/terraform-provider-aws PR 39090 ("SageMaker endpoints are now taking a little over 10
    # minutes to become InService"; the provider's wait went from 10 to 60 minutes); the SageMaker API
    # Reference, CreateEndpoint: SageMaker "launches the resources (ML compute instances), and deploys
    # the model(s) on them" while the endpoint is Creating.
    endpoint_create_s=480.0,
    # SageMaker developer guide, "Blue/Green Deployments": an update provisions a new (green) fleet
    # before shifting traffic, as long as a create; same source as endpoint_create_s.
    endpoint_update_s=480.0,
    # CodeBuild API Reference, BuildPhase (QUEUED, PROVISIONING: "The build environment is being set
    # up"); published build timelines show PROVISIONING from about 30 s to a few minutes for
    # standard images (masakimisawa.com, "CodeBuild PROVISIONING" 2022: 30 s, then 3.5 min after an
    # image change). 60 s here.
    codebuild_provisioning_s=60.0,
    # AWS Compute Blog, "Operating Lambda: Performance optimization - Part 1": cold starts "vary from
    # under 100 ms to over 1 second"; a Python handler importing boto3 is near the middle.
    lambda_cold_start_s=0.5,
)
PROFILES: Final[dict[str, TimingProfile]] = {"fast": FAST, "aws": AWS}


def profile_named(name: str) -> TimingProfile:
    profile = PROFILES.get(name)
    if profile is None:
        raise ValueError(f"the timing profile is one of {', '.join(PROFILE_NAMES)}, not {name!r}")
    return profile


Figure = Literal[
    "training_provisioning_s",
    "endpoint_create_s",
    "endpoint_update_s",
    "codebuild_provisioning_s",
    "lambda_cold_start_s",
]


class Timing:
    """The running harness's profile, scaled by its time scale; thread-safe."""

    def __init__(self, scale: Callable[[], float], profile: TimingProfile = FAST) -> None:
        self._scale = scale
        self._lock = threading.Lock()
        self._profile = profile

    @property
    def profile(self) -> TimingProfile:
        with self._lock:
            return self._profile

    def use(self, profile: TimingProfile | str) -> None:
        chosen = profile_named(profile) if isinstance(profile, str) else profile
        with self._lock:
            self._profile = chosen

    def delay_s(self, figure: Figure) -> float:
        """The profile's `figure` at the time scale: what the harness waits locally for it."""
        value = float(getattr(self.profile, figure))
        return value * self._scale()

    def wait(self, figure: Figure, stopped: threading.Event | None = None) -> bool:
        """Waits out `figure`; returns False when `stopped` was set first (the work was cancelled)."""
        seconds = self.delay_s(figure)
        if seconds <= 0:
            return not (stopped is not None and stopped.is_set())
        if stopped is None:
            threading.Event().wait(seconds)
            return True
        return not stopped.wait(seconds)
