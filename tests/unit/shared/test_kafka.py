"""The relay's shorter retry after CONCURRENT_TRANSACTIONS reaches aiokafka, or fails loudly."""

from __future__ import annotations

import aiokafka.producer.sender as aiokafka_sender
import pytest

from shared.kafka import CONCURRENT_TRANSACTIONS_RETRY_SECONDS, retry_concurrent_transactions_sooner


def test_aiokafka_retries_concurrent_transactions_after_the_shorter_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aiokafka_sender, "BACKOFF_OVERRIDE", 0.02)
    retry_concurrent_transactions_sooner()
    assert aiokafka_sender.BACKOFF_OVERRIDE == CONCURRENT_TRANSACTIONS_RETRY_SECONDS < 0.02


def test_an_aiokafka_without_the_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(aiokafka_sender, "BACKOFF_OVERRIDE")
    with pytest.raises(RuntimeError, match="BACKOFF_OVERRIDE"):
        retry_concurrent_transactions_sooner()
