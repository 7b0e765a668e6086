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
import logging
import time
import typing

from clone_flows import auth
from clone_flows import exceptions
from clone_flows import glance

LOG = logging.getLogger(__name__)


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


class AttachesLocation:
    """For a strategy that copies into the target store itself: attaching
    the copy to the reserved image through Glance's location API.

    The strategy sets ``self._opts.attach_timeout`` and answers
    ``_refused(job)`` (raises its sentence for a location Glance would not
    take).
    """

    _service = None

    def _service_token(self):
        """The clone service user's own token (its ``service`` role), sent
        as X-Service-Token next to the trust-scoped one: Glance allows
        non-http locations only to a caller with the service role.
        """
        if self._service is None:
            self._service = auth.service_session(self.conf)
        return self._service.get_token()

    def _attach(self, job, url):
        """Add ``url`` with the source's hash as validation data, then wait
        until Glance made the image active.
        """
        # Glance 33's schema takes only these two (no checksum): Glance
        # computes checksum and size itself (do_secure_hash, the default)
        validation = {'os_hash_algo': job.source_image.get('os_hash_algo'),
                      'os_hash_value': job.source_image.get('os_hash_value')}
        try:
            job.target.add_location(
                job.target_image_id, url, validation,
                headers={'X-Service-Token': self._service_token()})
        except glance.Forbidden as e:
            raise exceptions.TargetNotAuthorized(
                job.target.region, 'the location API refused the clone '
                'service (it needs the service role)') from e
        except glance.Conflict:
            pass        # an earlier attempt's attach is under way
        except glance.GlanceError as e:
            if not 400 <= (e.status or 0) < 500:
                raise
            LOG.warning('Clone %s: %s refused location %s: %s',
                        job.clone_id, job.target.region, url, e)
            self._refused(job)
        return self._wait_active(job)

    def _wait_active(self, job):
        deadline = time.monotonic() + self._opts.attach_timeout
        while True:
            image = job.target.get_image(job.target_image_id)
            status = image.get('status')
            if status == 'active':
                return image
            if status == 'queued' and not image.get(
                    'os_glance_import_task'):
                self._refused(job)
            if status not in ('queued', 'importing'):
                raise exceptions.ServiceUnavailable(
                    job.target.region, detail=f"the image became '{status}' "
                    f"while its location was attached")
            if time.monotonic() > deadline:
                raise exceptions.ServiceUnavailable(
                    job.target.region, detail='the image did not become '
                    'active after its location was added')
            time.sleep(0.2)
