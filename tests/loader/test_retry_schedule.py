"""The retry schedule the README promises is the one the Blob client gets."""

import statistics

import pytest

from model_loader.config import TransferSettings
from model_loader.storage import retry_policy


@pytest.mark.parametrize(
    ("retry", "seconds"), [(1, 2.0), (2, 2.75), (3, 3.875), (4, 5.5625), (5, 8.09375)]
)
def test_default_retry_n_waits_backoff_plus_1_5_to_the_n_with_half_a_second_of_jitter(
    retry, seconds
):
    policy = retry_policy(TransferSettings())
    waits = [policy.get_backoff_time({"count": retry}) for _ in range(400)]

    assert seconds - 0.5 <= min(waits) and max(waits) <= seconds + 0.5
    assert statistics.median(waits) == pytest.approx(seconds, abs=0.1)
    assert max(waits) - min(waits) > 0.5  # jittered, not fixed


def test_the_policy_retries_as_often_as_configured():
    assert retry_policy(TransferSettings()).total_retries == 5
    assert retry_policy(TransferSettings(retries=2)).total_retries == 2
