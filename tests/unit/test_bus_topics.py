"""Subscribers never make topics: `lemma topics create` does, with the partitions, replication
and retention (forever) they need; one made by a consumer starting first would have the
cluster's defaults, whose retention deletes events."""

from __future__ import annotations

import logging

from shared.bus import BROKER_LOG, make_broker
from shared.settings import Settings


def test_the_services_broker_makes_no_topic() -> None:
    broker = make_broker(Settings(), client_id="topics-test")
    assert broker.config.allow_auto_create_topics is False


def test_faststreams_warning_about_it_is_dropped_and_others_kept() -> None:
    def kept(message: str) -> bool:
        record = BROKER_LOG.makeRecord(BROKER_LOG.name, logging.WARNING, __file__, 1, message, (), None)
        return BROKER_LOG.filter(record)

    assert not kept("Auto create topics is disabled. Make sure the topics exist.")
    assert kept("Consumer group rebalanced")
