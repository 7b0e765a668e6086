"""What every store strategy answers (doc/source/architecture.rst, section
"Store strategies").

1. ``applies``: can it copy this source/target pair, and if not, why (a
   sentence the user can read).
2. ``plan``: what it will move (bytes, objects) for progress and dry runs.
3. ``copy``: do it, reporting progress and checkpoints; returns a
   :class:`CopyOutcome` - data went in through Glance, or a location in the
   target store to attach to the reserved image.
4. ``cleanup``: remove whatever it may have written; idempotent.
"""
import abc
import dataclasses
import typing


@dataclasses.dataclass
class CopyJob:
    """Everything a strategy needs about one copy."""
    source: typing.Any          # GlanceRegion of the source region
    target: typing.Any          # GlanceRegion of the target region
    source_image: dict          # the source image as Authorize saw it
    target_image_id: str
    clone_id: str


@dataclasses.dataclass
class CopyPlan:
    strategy: str
    bytes_total: int
    objects: int = 1
    reason: str = ''

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class CopyOutcome:
    bytes_copied: int
    #: None when the data went in through Glance's upload; otherwise a URL
    #: in the target store for Glance's location API.
    location: typing.Optional[str] = None
    details: dict = dataclasses.field(default_factory=dict)

    def to_dict(self):
        return dataclasses.asdict(self)


class Progress(typing.Protocol):
    def __call__(self, bytes_done: int, bytes_total: int,
                 checkpoint: typing.Optional[dict] = None) -> None:
        ...


class StoreStrategy(abc.ABC):
    """One way of moving image data between two regions' stores."""

    name = None

    def __init__(self, conf):
        self.conf = conf

    @abc.abstractmethod
    def applies(self, job):
        """(True, '') or (False, reason) for this source/target pair."""

    def plan(self, job):
        return CopyPlan(strategy=self.name,
                        bytes_total=int(job.source_image.get('size') or 0))

    @abc.abstractmethod
    def copy(self, job, progress, checkpoint=None):
        """Copy the data; return a :class:`CopyOutcome`."""

    @abc.abstractmethod
    def cleanup(self, job, checkpoint=None):
        """Remove partial data this strategy may have written (idempotent)."""
