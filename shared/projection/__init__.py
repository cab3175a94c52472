"""Projections: pure folds (``fold``) and the runtime that feeds them from Kafka (``runtime``)."""

from shared.projection.fold import DocRef, Outcome, Projection, fold_events

__all__ = ["DocRef", "Outcome", "Projection", "fold_events"]
