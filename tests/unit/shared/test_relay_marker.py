"""Relay markers: only this database's, and only for the very rows they were written for."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from shared.outbox import RelayMarker, parse_marker, rows_digest

OURS, THEIRS = uuid.uuid4(), uuid.uuid4()


def test_a_marker_round_trips_for_its_own_database_only() -> None:
    marker = RelayMarker(OURS, (3, 4, 5), "d")
    assert parse_marker(marker.encode(), OURS) == marker
    assert parse_marker(marker.encode(), THEIRS) is None


def test_a_record_that_names_no_database_is_no_marker() -> None:
    for value in (
        None,
        b'{"ids": [1, 2]}',
        b"not json",
        b'{"database": "x", "ids": [1], "digest": "d"}',
        b"[]",
    ):
        assert parse_marker(value, OURS) is None


rows = st.lists(
    st.tuples(st.integers(1, 10**12), st.uuids()), min_size=1, max_size=20, unique_by=lambda r: r[0]
)


@given(rows)
def test_the_digest_ignores_the_order_rows_are_read_in(batch: list[tuple[int, uuid.UUID]]) -> None:
    assert rows_digest(batch) == rows_digest(list(reversed(batch)))


@given(rows, st.uuids())
def test_other_rows_under_the_same_ids_have_another_digest(
    batch: list[tuple[int, uuid.UUID]], other: uuid.UUID
) -> None:
    changed = [(batch[0][0], other), *batch[1:]]
    assert (rows_digest(changed) == rows_digest(batch)) is (other == batch[0][1])
