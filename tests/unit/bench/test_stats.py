import pytest

from bench.stats import Latencies, per_second, percentile, percentile_series, rate, ratio


def test_percentile_uses_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_percentile_of_nothing_is_unknown_and_q_is_checked() -> None:
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_rate_and_ratio() -> None:
    assert rate(100, 10.0, 12.0) == 50.0
    assert rate(100, 10.0, None) is None
    assert rate(100, 10.0, 10.0) is None
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(None, 200.0) is None
    assert ratio(50.0, 0.0) is None


def test_latencies_summary() -> None:
    summary = Latencies.of([0.1, 0.2, 0.3, 0.4])
    assert summary.count == 4
    assert summary.p50 == 0.2
    assert summary.max == 0.4
    assert Latencies.of([]).p99 is None


def test_per_second_buckets_drop_earlier_instants() -> None:
    assert per_second([9.0, 10.0, 10.5, 12.2], start=10.0) == [2, 0, 1]
    assert per_second([], start=0.0) == []


def test_percentile_series_per_bucket() -> None:
    samples = [(0.1, 1.0), (0.2, 3.0), (2.5, 5.0)]
    assert percentile_series(samples, start=0.0, q=100) == [3.0, None, 5.0]
