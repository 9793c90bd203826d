"""The local release history (build/demo/history.json), like helm's revisions: one entry per
version the pod went on serving (`make demo`, `make deploy`, `make rollback`), newest last.
A deploy that failed changed nothing, so it adds no revision."""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

FILE = "history.json"


@dataclass(frozen=True)
class Revision:
    revision: int
    name: str
    version: str
    digest: str
    description: str  # "demo", "deploy", "rollback to 2"
    deployed: str  # UTC, ISO 8601


class History:
    def __init__(self, workdir: Path) -> None:
        self.path = workdir / FILE

    def revisions(self) -> list[Revision]:
        if not self.path.exists():
            return []
        return [Revision(**entry) for entry in json.loads(self.path.read_text())]

    def current(self) -> Revision | None:
        revisions = self.revisions()
        return revisions[-1] if revisions else None

    def previous(self) -> Revision | None:
        """The revision served before the current one: what `rollback` returns to."""
        revisions = self.revisions()
        return revisions[-2] if len(revisions) > 1 else None

    def record(self, name: str, version: str, digest: str, description: str) -> Revision:
        revisions = self.revisions()
        revision = Revision(
            revision=revisions[-1].revision + 1 if revisions else 1,
            name=name,
            version=version,
            digest=digest,
            description=description,
            deployed=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        staging = self.path.with_suffix(".tmp")
        staging.write_text(json.dumps([asdict(r) for r in [*revisions, revision]], indent=2))
        staging.replace(self.path)
        return revision
