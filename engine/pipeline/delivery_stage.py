"""The delivery stage: Fritz/SkyPortal, the report e-mail, Slack and TNS, beside reduction.

Delivery plans no executor jobs: its sends run on the delivery service's own threads from the
ledger table (:mod:`engine.delivery`). The engine ticks it every loop iteration (record
finished sends, plan new ledger rows, start due sends) and routes the ``tns_report`` and
``deliver_retry`` requests to it. Its life cycle (settling interrupted sends at start, the
``--once`` drain, closing) stays with the engine, which owns the service.
"""

from __future__ import annotations

from engine.delivery.service import DeliveryService
from engine.pipeline.jobs import Job
from engine.pipeline.stage import EngineView


class DeliveryStage:
    """The :class:`~engine.pipeline.stage.Stage` face of a :class:`DeliveryService`."""

    name = "delivery"

    def __init__(self, service: DeliveryService) -> None:
        self.service = service

    def plan(self, view: EngineView) -> list[Job]:
        """None: sends run on the service's threads."""
        return []

    def tick(self, view: EngineView) -> bool:
        """Record finished sends, plan new rows, start due sends; True if anything happened."""
        return self.service.step(view.nights, live=not view.once)

    def on_submit(self, view: EngineView, job: Job) -> None:
        """Never called (no jobs)."""

    def progress(self, view: EngineView, job: Job, stage: str, fraction: float, message: str) -> None:
        """Never called (no jobs)."""

    def record(self, view: EngineView, job: Job, result: object) -> None:
        """Never called (no jobs)."""

    def failed(self, view: EngineView, job: Job, error: BaseException) -> None:
        """Never called (no jobs)."""

    def busy(self, view: EngineView) -> bool:
        """Never holds ``--once`` back: the engine drains the ledger once the night is reduced."""
        return False

    def request_handlers(self) -> dict:
        """``tns_report`` and ``deliver_retry``."""
        return self.service.request_handlers()
