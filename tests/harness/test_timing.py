"""Timing profiles (harness/timing.py): the figures, their scaling, and the plane waiting them out."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from harness.timing import AWS, FAST, PROFILES, Timing, TimingProfile, profile_named
from tests.harness.planes import Harness, running_harness, training_request, wait_until
from tests.harness.standin import write_standin_tree

SCALE = 0.01


def test_the_fast_profile_adds_nothing_and_aws_names_every_figure() -> None:
    figures = [name for name in TimingProfile.__dataclass_fields__ if name != "name"]
    assert all(getattr(FAST, figure) == 0 for figure in figures)
    assert all(getattr(AWS, figure) > 0 for figure in figures)
    assert set(PROFILES) == {"fast", "aws"}


def test_a_delay_is_the_figure_times_the_current_scale() -> None:
    scale = [0.01]
    timing = Timing(lambda: scale[0], AWS)
    assert timing.delay_s("endpoint_create_s") == pytest.approx(AWS.endpoint_create_s * 0.01)
    scale[0] = 1.0
    assert timing.delay_s("endpoint_create_s") == pytest.approx(AWS.endpoint_create_s)
    timing.use("fast")
    assert timing.delay_s("endpoint_create_s") == 0


def test_bad_profiles_are_refused() -> None:
    with pytest.raises(ValueError, match="one of fast, aws"):
        profile_named("slow")
    with pytest.raises(ValueError, match="endpoint_create_s"):
        TimingProfile(name="broken", endpoint_create_s=-1.0)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_harness(tmp_path_factory.mktemp("timing"), startup_limit_s=20.0) as running:
        running.emulator.context.step_functions.set_scale(SCALE)
        running.emulator.context.timing.use("aws")
        s3 = running.client("s3")
        s3.create_bucket(Bucket="timing")
        s3.put_object(Bucket="timing", Key="data/part.csv", Body=b"Query,Intent\nhi,greet\nbye,leave\n")
        yield running


def test_a_training_job_waits_in_starting_for_its_instances(
    harness: Harness, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Under `aws` a job stays InProgress/Starting for the profile's provisioning time (scaled) before
    Downloading, as SageMaker launches and prepares its instances first."""
    image = harness.image_uri(write_standin_tree(tmp_path_factory.mktemp("standin")))
    sagemaker = harness.client("sagemaker")
    started = time.monotonic()
    sagemaker.create_training_job(
        **training_request("timed-job", image, "s3://timing/data/", "s3://timing/out/")
    )
    provisioning = AWS.training_provisioning_s * SCALE
    time.sleep(provisioning / 3)
    first = sagemaker.describe_training_job(TrainingJobName="timed-job")["SecondaryStatus"]
    # Starting while the provisioning time has not passed (a loaded machine may be slower than that
    # between the create call and this look; then the look proves nothing and the bound below holds).
    assert first == "Starting" or time.monotonic() - started >= provisioning
    wait_until(
        lambda: sagemaker.describe_training_job(TrainingJobName="timed-job")["SecondaryStatus"],
        lambda status: status != "Starting",
        timeout=30,
        interval=0.05,
    )
    assert time.monotonic() - started >= provisioning


def test_the_command_lines_timing_beats_the_scenario_files(tmp_path_factory: pytest.TempPathFactory) -> None:
    from harness.scenarios.loader import parse_scenario
    from harness.scenarios.replay import harness_settings

    text = "name: t\ndescription: d\nsettings: {timing: aws}\nsteps:\n  - commit: {}\n"
    scenario = parse_scenario(text, tmp_path_factory.mktemp("scenario") / "t.yaml")
    work = tmp_path_factory.mktemp("work")
    assert harness_settings(scenario, work).timing == "aws"
    assert harness_settings(scenario, work, timing="fast").timing == "fast"
