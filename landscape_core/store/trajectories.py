"""Finetuning trajectories (``trajectory ADAPTER``), by the plane of weights they are on.

``identity.plane_key`` names a plane (model files and directions), so the Landscape
page draws a path over every 2D run of that plane, whatever its grid or prompts. Like a
defence report, a trajectory is derived data: ``trajectory`` rebuilds it, and saving
again replaces it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd

from landscape_core.store.database import Database


class Trajectories:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, plane_key: str, adapter: str, points: list[dict[str, Any]]) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO trajectories VALUES (?, ?, ?, ?)",
                (plane_key, adapter, json.dumps(points), time.time()),
            )

    def on_plane(self, plane_key: str) -> dict[str, pd.DataFrame]:
        """Every trajectory on this plane: adapter -> one row per checkpoint."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT adapter, points FROM trajectories WHERE plane_key = ? ORDER BY created",
                (plane_key,),
            ).fetchall()
        return {adapter: pd.DataFrame(json.loads(points)) for adapter, points in rows}

    def frame(self) -> pd.DataFrame:
        """Every stored trajectory: plane key, adapter, checkpoints (a frame) and when."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT plane_key, adapter, points, created FROM trajectories ORDER BY created"
            ).fetchall()
        return pd.DataFrame(
            [(key, adapter, pd.DataFrame(json.loads(points)), created)
             for key, adapter, points, created in rows],
            columns=["plane_key", "adapter", "points", "created"],
        )  # fmt: skip
