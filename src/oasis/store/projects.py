"""Projects: the owners that database API keys store objects under."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from oasis.ids import new_id
from oasis.store.tables import projects


class ProjectExistsError(Exception):
    """A project of that name already exists."""


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    created_at: int
    rpm: int | None
    tpm: int | None
    max_tokens: int | None


class ProjectRepository:
    """Create, list and find projects."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        name: str,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        max_tokens: int | None = None,
    ) -> Project:
        project = Project(new_id("proj", nbytes=12), name, int(time.time()), rpm, tpm, max_tokens)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    projects.insert().values(
                        id=project.id,
                        name=name,
                        created_at=project.created_at,
                        rpm=rpm,
                        tpm=tpm,
                        max_tokens=max_tokens,
                    )
                )
        except IntegrityError as exc:
            raise ProjectExistsError(f"a project named {name!r} already exists") from exc
        return project

    async def list(self) -> list[Project]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(projects).order_by(projects.c.created_at))).all()
        return [_project(row) for row in rows]

    async def find(self, name_or_id: str) -> Project | None:
        """The project with this name, or else this id."""
        async with self.engine.connect() as conn:
            for column in (projects.c.name, projects.c.id):
                row = (await conn.execute(select(projects).where(column == name_or_id))).first()
                if row is not None:
                    return _project(row)
        return None


def _project(row: Any) -> Project:
    return Project(row.id, row.name, row.created_at, row.rpm, row.tpm, row.max_tokens)
