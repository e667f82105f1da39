import pytest

from bench.hops import HOPS, SEGMENTS, breakdown, record


def test_each_segment_is_the_time_between_two_consecutive_hops() -> None:
    paths: dict[str, dict[str, float]] = {}
    for index, hop in enumerate(HOPS):
        record(paths, hop, [("R-1", 100.0 + index), ("R-2", 200.0 + 2 * index)])
    result = breakdown(paths)
    assert result["complete_paths"] == 2
    assert len(result["segments_s"]) == len(HOPS) - 1 == len(SEGMENTS)
    for segment in SEGMENTS:
        figures = result["segments_s"][segment]
        assert figures["count"] == 2
        assert figures["p50"] == 1.0 and figures["max"] == 2.0


def test_the_first_instant_of_a_hop_counts_and_missing_hops_leave_their_segments_out() -> None:
    paths: dict[str, dict[str, float]] = {}
    record(paths, "occurred_at", [("R-1", 10.0)])
    record(paths, "registration_commit", [("R-1", 10.5), ("R-1", 10.2)])  # a retried transaction
    record(paths, "registration_publish", [("R-1", 10.3)])
    result = breakdown(paths)
    assert result["complete_paths"] == 0
    first = result["segments_s"]["occurred_at -> registration_commit"]
    assert first["count"] == 1 and first["max"] == pytest.approx(0.2)
    assert result["segments_s"]["registration_publish -> funding_commit"]["count"] == 0


def test_an_unknown_hop_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown hop"):
        record({}, "portal_publish", [("R-1", 1.0)])
