"""The SQLite store: runs, points and scores (``runs``); the job queue (``jobs``). Torch-free."""

from landscape_core.store.jobs import JobQueue
from landscape_core.store.records import GenerationRow, GridPoint, MeasureRow, PointResult, ScoreRow
from landscape_core.store.runs import Store

__all__ = [
    "GenerationRow",
    "GridPoint",
    "JobQueue",
    "MeasureRow",
    "PointResult",
    "ScoreRow",
    "Store",
]
