"""HTTP stream: the universal fallback.

``GET /v2/images/{src}/file`` in the source region is streamed straight into
``PUT /v2/images/{dst}/file`` in the target region: no staging disk, memory
bounded by one chunk whatever the image size.  Glance computes the target's
checksum and hash as the bytes arrive; Verify compares them with the source.

A Glance upload cannot resume, so a resumed copy starts again into the same
reserved image (Glance puts it back to ``queued`` when an upload breaks).
"""
import logging
import time

from oslo_config import cfg

from clone_flows import exceptions
from clone_flows import glance
from clone_flows.stores import base

LOG = logging.getLogger(__name__)

http_opts = [
    cfg.IntOpt('chunk_size', default=64 * 1024, min=4096,
               help='Bytes read from the source and sent to the target at a '
                    'time: the copy\'s memory is bounded by this.  64 KiB '
                    'is what Glance\'s file store reads from an upload at a '
                    'time; bigger chunks make a gunicorn-served Glance '
                    're-buffer each one, costing it more CPU (figures: '
                    'doc/source/benchmarks.rst).'),
    cfg.FloatOpt('busy_upload_timeout', default=10.0, min=0,
                 help='Seconds a resumed copy waits for a reserved image '
                      'still "saving" from an earlier attempt to fall back '
                      'to "queued" before replacing it with a fresh one.'),
]


def register_opts(conf):
    conf.register_opts(http_opts, group='http_stream')


def list_opts():
    return [('http_stream', http_opts)]


class HttpStreamStrategy(base.StoreStrategy):
    name = 'http'

    def applies(self, job):
        return True, ''

    def _settled(self, job):
        """The reserved image, once no earlier upload is writing into it.

        Glance puts an image back to 'queued' when an upload's connection
        breaks; one that stays 'saving' belongs to a paused writer.
        """
        deadline = time.monotonic() + self.conf.http_stream.busy_upload_timeout
        while True:
            current = job.target.get_image(job.target_image_id)
            if current.get('status') != 'saving':
                return current
            if time.monotonic() >= deadline:
                raise exceptions.TargetImageBusy(job.target_image_id,
                                                 job.target.region)
            time.sleep(0.5)

    def copy(self, job, progress, checkpoint=None):
        image_id = job.target_image_id
        current = self._settled(job)
        status = current.get('status')
        if status == 'active':
            # An earlier run finished the upload before it could record it.
            LOG.info('Clone %s: target image %s is already active, not '
                     'uploading again', job.clone_id, image_id)
            size = int(current.get('size') or 0)
            progress(size, size)
            return base.CopyOutcome(bytes_copied=size,
                                    details={'already_uploaded': True})
        if status != 'queued':
            raise exceptions.ServiceUnavailable(
                job.target.region, detail=f"the reserved image {image_id} is "
                f"'{status}' and cannot take data")
        total = int(job.source_image.get('size') or 0)
        chunk_size = self.conf.http_stream.chunk_size
        counter = _Counter(total, progress)
        try:
            src = job.source.open_data(job.source_image['id'])
        except glance.Forbidden as e:
            raise exceptions.SourceNotDownloadable(
                job.source_image['id'], job.source.region) from e
        try:
            job.target.upload_data(
                image_id, counter.chunks(src.iter_content(chunk_size)))
        except Exception as e:
            if counter.source_error is not None:
                raise counter.source_error from e
            if isinstance(e, glance.GlanceError):
                LOG.warning('Clone %s: the upload into %s was refused: %s',
                            job.clone_id, job.target.region, e)
                raise exceptions.ServiceUnavailable(
                    job.target.region,
                    detail=f'it refused the upload (HTTP {e.status})') from e
            raise
        finally:
            src.close()
        return base.CopyOutcome(bytes_copied=counter.done,
                                details={'seconds': round(counter.elapsed, 3)})

    def cleanup(self, job, checkpoint=None):
        # The data lives only inside the reserved image, which ReserveImage's
        # revert deletes: nothing of its own to remove.
        return None


class _Counter:
    """Passes chunks through, counting bytes and reporting progress."""

    def __init__(self, total, progress):
        self.total = total
        self.done = 0
        self._progress = progress
        self._start = time.monotonic()
        self.source_error = None

    @property
    def elapsed(self):
        return time.monotonic() - self._start

    def chunks(self, source_chunks):
        source = iter(source_chunks)
        while True:
            try:
                chunk = next(source)
            except StopIteration:
                break
            except Exception as e:  # the source broke while streaming
                LOG.warning('The source data stream broke: %r', e)
                self.source_error = exceptions.ServiceUnavailable(
                    'the source region', what='the image data stream',
                    detail='the connection broke mid-copy')
                raise
            if chunk:
                self.done += len(chunk)
                # may raise to stop the copy (cancelled, claim lost)
                self._progress(self.done, self.total)
                yield chunk
        self._progress(self.done, self.total)
