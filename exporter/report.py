"""`RunReport`: what a run did, and the JSON report (`--report FILE`) CI reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from .plan import Job

__all__ = ["RunReport"]


@dataclass
class RunReport:
    partitions: int = 0
    """Partitions extracted and written (uploaded, or found unchanged)."""
    unchanged: int = 0
    """Of those, partitions whose files were already published byte for byte."""
    rows: int = 0
    bytes: int = 0
    """Data bytes uploaded."""
    requests: int = 0
    """Requests sent to the target."""
    seconds: float = 0.0
    sites: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """site/table/day of the partition that stopped the run, if any."""
    unnamed: list[str] = field(default_factory=list)
    """Objects under data/ that no manifest names (deleted when pruning)."""
    emptied: list[str] = field(default_factory=list)
    """Files deleted because their day has no rows any more at the source."""
    leftover: list[str] = field(default_factory=list)
    """Files an interrupted run left that no manifest names any more (deleted)."""
    recovered: list[str] = field(default_factory=list)
    """site/table/day entries an interrupted run left in flux: rolled forward, or dropped
    and exported again."""
    pruned: bool = False
    dry_run: bool = False
    jobs: list[Job] = field(default_factory=list)
    error: str = ""
    """The error line of a failed run ("" when it did not fail)."""
    stage: str = "plan"
    """Where a failed run stopped: "plan" (before any partition) or "export"."""

    def to_dict(self) -> dict[str, object]:
        """The JSON run report (`--report FILE`) for CI; a failed run's begins with
        `failed`, `error` and `stage`, and the rest says what it did before."""
        failure = {"failed": True, "error": self.error, "stage": self.stage} if self.error else {}
        return {
            **failure,
            "partitions_planned": len(self.jobs),
            "partitions_exported": self.partitions - self.unchanged,
            "partitions_unchanged": self.unchanged,
            "partitions_failed": self.failed,
            "rows": self.rows,
            "bytes_sent": self.bytes,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "sites": self.sites,
            "unnamed_objects": self.unnamed,
            "emptied_files": self.emptied,
            "leftover_files": self.leftover,
            "recovered": self.recovered,
            "pruned": self.pruned,
            "dry_run": self.dry_run,
        }
