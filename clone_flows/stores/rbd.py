"""Ceph RBD to Ceph RBD: only the allocated extents cross, resumably.

Served between regions whose Glance stores in RBD (glance_store's RBD
driver): an image's data is the RBD image ``<pool>/<image id>`` and its
protected snapshot ``snap``, and its location is
``rbd://<cluster fsid>/<pool>/<image id>/snap``: no credential in it (the
cephx users and keyrings stay in each side's ceph.conf).

The copy:

1. The source snapshot ``<source pool>/<source id>@snap`` is opened
   read-only with the clone service's own *read* cephx user of the source
   cluster (least capabilities: ``profile rbd-read-only`` on the pool), and
   its allocated extents are listed with librbd ``diff_iterate``; holes are
   never read nor sent.
2. The destination ``<target pool>/<target image id>`` is created in the
   target cluster with the clone service's *write* cephx user (``profile
   rbd`` on the pool), with the source's size and object size and the
   target cluster's default features (as Glance's RBD store does), and
   marked with the clone's id (image metadata).  A destination that
   already exists and is not this clone's, has snapshots of its own, is
   watched by another client or carries an advisory lock is refused: a
   second writer's data would end up in the copy.
3. The image is split into ranges of ``range_mb``; each range is first
   discarded in the destination (a range written again never keeps older
   bytes) and then its extents are read from the source and written to the
   destination, ``workers`` ranges at a time.  After each range a
   checkpoint records it.  A resumed copy re-checks every range the
   checkpoint claims (the destination's bytes at the source's extents are
   compared with the source's) and copies again only the ranges that are
   not recorded or do not match.
4. The snapshot ``snap`` is created and protected, as Glance's RBD store
   does, and the location is attached to the reserved target image through
   Glance's location API with the source's hash as validation data; Glance
   (``do_secure_hash``) reads the data back to hash it, and Verify compares
   size, checksum and hash with the source.

Why librbd (the ``rbd`` Python bindings) and not ``rbd export-diff | rbd
import-diff``: the pipe moves a whole image (or a snapshot-to-snapshot
diff) in one stream that cannot start at an offset, so a killed copy starts
over, and the stream carries whole objects (bench/rbd.py: the stream of a
1 GiB image with 300 MiB of scattered data is ~1.75 times the data), while
``diff_iterate`` gives exact extents and any sub-range; and the bindings'
calls release the GIL, so a few threads keep both clusters busy.
bench/rbd.py measures both side by side (README, "The Ceph RBD strategy").

No compression in transit: librados sends exactly the allocated extents,
which for image data (already compressed, or random) leaves nothing for a
compressor to take; what zstd recovers from an export-diff stream is that
stream's whole-object padding, which this path never sends (measured in
bench/rbd.py).

Every librados/librbd call has a timeout: the connection (``timeout``) and
each monitor and OSD operation (``rados_mon_op_timeout``,
``rados_osd_op_timeout``) end with an error instead of hanging.

Reversion: the destination image named after the target image id (when
it is this clone's: its mark, or the checkpoint's record of creating it)
is removed with its snapshots (unprotected first).  Idempotent.
"""
import concurrent.futures
import contextlib
import logging
import threading
import time
import urllib.parse

from oslo_config import cfg

from clone_flows import exceptions
from clone_flows import glance
from clone_flows.stores import base

LOG = logging.getLogger(__name__)

GROUP = 'rbd_store'
#: Glance's RBD store's snapshot name (glance_store DEFAULT_SNAPNAME)
SNAPSHOT = 'snap'
#: image metadata key marking a destination as this clone's
MARK = 'glance_clone.clone_id'
MiB = 1024 * 1024

rbd_opts = [
    cfg.DictOpt('regions', default={},
                help='Regions whose Glance stores images in Ceph RBD, each '
                     'with the pool its RBD store writes '
                     '(rbd_store_pool): ``RegionOne:images``.  A region not '
                     'listed is not served by this strategy.'),
    cfg.DictOpt('ceph_confs', default={},
                help='Ceph configuration file of each region\'s cluster as '
                     'the clone service reaches it (monitors, and the '
                     'keyrings of its users): ``RegionOne:/etc/ceph/'
                     'one.conf``.  Default /etc/ceph/ceph.conf.  No key '
                     'belongs in glance-clone\'s own configuration.'),
    cfg.DictOpt('read_users', default={},
                help='cephx user (without "client.") the clone service '
                     'reads a source image with, per region; it needs only '
                     '"profile rbd-read-only" on the pool.  Default '
                     'glance-clone-read.'),
    cfg.DictOpt('write_users', default={},
                help='cephx user (without "client.") the clone service '
                     'writes a copy with, per region ("profile rbd" on the '
                     'pool).  Default glance-clone-write.'),
    cfg.DictOpt('store_ids', default={},
                help='Glance store id of each region\'s RBD store where its '
                     'Glance is multi-store: a source image whose "stores" '
                     'do not include it is not in RBD, a target whose '
                     'default store is another stores elsewhere.  Default '
                     '"rbd".'),
    cfg.IntOpt('range_mb', default=64, min=1, max=65536,
               help='The copy is done and checkpointed in ranges of this '
                    'many MiB of the image: a resumed copy sends again only '
                    'the ranges not recorded as written.'),
    cfg.IntOpt('workers', default=4, min=1, max=32,
               help='Ranges copied at the same time.'),
    cfg.IntOpt('io_mb', default=4, min=1, max=64,
               help='Largest read or write sent to Ceph at once (MiB): the '
                    'copy holds at most workers x this in memory.'),
    cfg.FloatOpt('timeout', default=60.0, min=1,
                 help='Seconds any Ceph operation (connecting, a monitor '
                      'command, one read or write) may take before the copy '
                      'fails instead of hanging.'),
    cfg.FloatOpt('connect_timeout', default=10.0, min=1,
                 help='Seconds to reach a cluster\'s monitors when checking '
                      'whether the strategy applies.'),
    cfg.FloatOpt('watch_grace', default=45.0, min=0,
                 help='Seconds a destination watched by another client is '
                      'given to lose that watch before the copy refuses it: '
                      'the watch of a client that died (a conductor killed '
                      'mid-copy) lasts until the OSDs time it out '
                      '(osd_client_watch_timeout, 30 s by default); a live '
                      'writer keeps it.'),
    cfg.FloatOpt('attach_timeout', default=3600.0, min=1,
                 help='Seconds to wait for Glance to make the image active '
                      'after the location is added (Glance may read the '
                      'data back to hash it).'),
]


def register_opts(conf):
    conf.register_opts(rbd_opts, group=GROUP)


def list_opts():
    return [(GROUP, rbd_opts)]


class SourceDataBroken(exceptions.CloneError):
    """The source image's RBD data is missing or does not match it."""


class DestinationRefused(exceptions.CloneError):
    """The destination RBD image cannot be written safely."""


class LocationRefused(exceptions.CloneError):
    """The target Glance would not take the copy's location."""


class CephUnavailable(exceptions.ServiceUnavailable):
    def __init__(self, region):
        super().__init__(region, what='the Ceph cluster')


class NotServed(Exception):
    """Not for the RBD strategy; ``str()`` is the sentence saying why."""


def location_url(fsid, pool, image, snapshot=SNAPSHOT):
    """Glance's RBD location of an image: ``rbd://fsid/pool/image/snap``."""
    q = lambda s: urllib.parse.quote(str(s), '')  # noqa: E731
    return 'rbd://%s/%s/%s/%s' % (q(fsid), q(pool), q(image), q(snapshot))


def split_ranges(extents, size, range_bytes):
    """[(range offset, range length, [(offset, length)...])] covering the
    image, each extent cut at range boundaries.
    """
    ranges = [(off, min(range_bytes, size - off), [])
              for off in range(0, size, range_bytes)]
    for off, length in extents:
        end = off + length
        while off < end:
            i = off // range_bytes
            stop = min(end, (i + 1) * range_bytes)
            ranges[i][2].append((off, stop - off))
            off = stop
    return ranges


def merge(extents):
    """Sorted, adjacent extents joined."""
    out = []
    for off, length in sorted(extents):
        if out and out[-1][0] + out[-1][1] >= off:
            last = out[-1]
            out[-1] = (last[0], max(last[1], off + length - last[0]))
        else:
            out.append((off, length))
    return out


def pieces(extents, io_bytes):
    """Extents cut into reads/writes of at most ``io_bytes``."""
    for off, length in extents:
        end = off + length
        while off < end:
            n = min(io_bytes, end - off)
            yield off, n
            off += n


# ---------------------------------------------------------------------------
# Ceph connections


def _modules():
    try:
        import rados
        import rbd
    except ImportError as e:     # python3-rados / python3-rbd (see README)
        raise NotServed('the Ceph Python bindings (rados, rbd) are not '
                        'installed where the clone runs') from e
    return rados, rbd


class Cluster:
    """One connection to a region's Ceph cluster as one cephx user."""

    def __init__(self, region, conffile, user, timeout, connect_timeout=None):
        self.rados, self.rbd = _modules()
        self.region = region
        t = str(int(max(1, timeout)))
        self.client = self.rados.Rados(
            conffile=conffile, rados_id=user,
            conf={'rados_osd_op_timeout': t, 'rados_mon_op_timeout': t,
                  'client_mount_timeout': str(int(connect_timeout or
                                                  timeout))})
        self.client.connect(timeout=int(connect_timeout or timeout))

    def fsid(self):
        fsid = self.client.get_fsid()
        return fsid.decode() if isinstance(fsid, bytes) else fsid

    def ioctx(self, pool):
        return self.client.open_ioctx(pool)

    def close(self):
        self.client.shutdown()


def _unavailable(job, region, detail):
    """The user's sentence names the region; Ceph's answer goes to the log
    with the clone id.
    """
    LOG.warning('Clone %s: Ceph of %s: %s', job.clone_id, region, detail)
    return CephUnavailable(region)


# ---------------------------------------------------------------------------
# The strategy


class RbdStrategy(base.AttachesLocation, base.StoreStrategy):
    name = 'rbd'

    def __init__(self, conf):
        super().__init__(conf)
        self._service = None
        self._checked = {}      # source image id -> what applies() read

    @property
    def _opts(self):
        return self.conf[GROUP]

    def _store_id(self, region):
        return self._opts.store_ids.get(region) or 'rbd'

    def pool(self, region):
        return self._opts.regions.get(region)

    def connect(self, region, side, connect_timeout=None):
        """A :class:`Cluster` of ``region`` as the clone's read user
        (``side`` 'source') or write user ('target').
        """
        users = self._opts.read_users if side == 'source' else \
            self._opts.write_users
        user = users.get(region) or ('glance-clone-read' if side == 'source'
                                     else 'glance-clone-write')
        conffile = self._opts.ceph_confs.get(region) or '/etc/ceph/ceph.conf'
        return Cluster(region, conffile, user, self._opts.timeout,
                       connect_timeout)

    @contextlib.contextmanager
    def _cluster(self, job, region, side, connect_timeout=None):
        rados, _ = _modules()
        try:
            cluster = self.connect(region, side, connect_timeout)
        except rados.Error as e:
            LOG.warning('Clone %s: Ceph of %s (%s user): %r', job.clone_id,
                        region, side, e)
            raise NotServed(f'the Ceph cluster of {region} did not answer '
                            f'(or refused the clone service\'s {side} '
                            f'user)') from e
        try:
            yield cluster
        finally:
            cluster.close()

    # -- the four answers --------------------------------------------------
    def applies(self, job):
        try:
            self._check(job)
        except NotServed as e:
            return False, str(e)
        return True, ''

    def _check(self, job):
        src_region, dst_region = job.source.region, job.target.region
        for region in (src_region, dst_region):
            if not self.pool(region):
                raise NotServed(f'{region} is not declared an RBD region '
                                f'([{GROUP}] regions)')
        image = job.source_image
        stores = [s for s in (image.get('stores') or '').split(',') if s]
        if stores and self._store_id(src_region) not in stores:
            raise NotServed(f"the source image is not in RBD (it is in "
                            f"{', '.join(stores)})")
        if not int(image.get('size') or 0):
            raise NotServed('the source image is empty')
        try:
            default = job.target.default_store()
        except glance.GlanceError as e:
            raise NotServed(f'the stores of {dst_region} are unknown '
                            f'({e.status})') from e
        if default is not None and default != self._store_id(dst_region):
            raise NotServed(f"{dst_region} stores new images in '{default}', "
                            f"not in RBD")
        t = self._opts.connect_timeout
        with self._cluster(job, src_region, 'source', t) as src:
            # kept for plan(), which PlanCopy asks next
            self._checked = {image['id']: self._source_info(job, src)}
        with self._cluster(job, dst_region, 'target', t):
            pass

    def _source_info(self, job, src):
        """(size, object order, [extents]) of the source snapshot; raises
        NotServed when it is not the image's data.
        """
        _, rbd = _modules()
        image = job.source_image
        pool = self.pool(job.source.region)
        try:
            with src.ioctx(pool) as ioctx:
                with rbd.Image(ioctx, image['id'], snapshot=SNAPSHOT,
                               read_only=True) as img:
                    info = img.stat()
                    extents = []
                    img.diff_iterate(
                        0, info['size'], None,
                        lambda off, length, exists: exists and
                        extents.append((off, length)))
        except rbd.ImageNotFound as e:
            raise NotServed(f"the source image has no RBD snapshot "
                            f"{pool}/{image['id']}@{SNAPSHOT} in "
                            f"{job.source.region}'s Ceph") from e
        except src.rados.ObjectNotFound as e:
            raise NotServed(f"{job.source.region}'s Ceph has no pool "
                            f"{pool}") from e
        except (src.rados.Error, rbd.Error) as e:
            LOG.warning('Clone %s: reading %s/%s@%s: %r', job.clone_id, pool,
                        image['id'], SNAPSHOT, e)
            raise NotServed(f"the clone service may not read the source "
                            f"image's RBD data in {job.source.region}") from e
        size = int(image.get('size') or 0)
        if info['size'] != size:
            raise NotServed(f"the RBD snapshot of the source image holds "
                            f"{info['size']} bytes, the image {size}")
        return info['size'], info['order'], merge(extents)

    def plan(self, job):
        plan = super().plan(job)
        try:
            found = self._checked.get(job.source_image['id'])
            if found is None:
                with self._cluster(job, job.source.region, 'source',
                                   self._opts.connect_timeout) as src:
                    found = self._source_info(job, src)
            size, _, extents = found
            plan.bytes_total = sum(n for _, n in extents)
            plan.objects = len(split_ranges([], size,
                                            self._opts.range_mb * MiB))
        except NotServed:
            pass
        return plan

    def copy(self, job, progress, checkpoint=None):
        image = job.source_image
        current = job.target.get_image(job.target_image_id)
        if current.get('status') in ('active', 'importing'):
            LOG.info('Clone %s: target image %s is already %s',
                     job.clone_id, job.target_image_id, current['status'])
            self._wait_active(job)
            size = int(image.get('size') or 0)
            progress(size, size)
            return base.CopyOutcome(bytes_copied=0,
                                    details={'already_attached': True})
        if current.get('status') != 'queued':
            raise exceptions.ServiceUnavailable(
                job.target.region, detail=f"the reserved image "
                f"{job.target_image_id} is '{current.get('status')}' and "
                f"cannot take data")
        started = time.monotonic()
        try:
            with self._cluster(job, job.source.region, 'source') as src, \
                    self._cluster(job, job.target.region, 'target') as dst:
                copier = _Copier(self, job, src, dst, progress,
                                 checkpoint or {})
                fsid = dst.fsid()
                copier.run()
        except NotServed as e:
            raise exceptions.NoStrategy(self.name, str(e)) from e
        copy_seconds = time.monotonic() - started
        self._attach(job, location_url(fsid, self.pool(job.target.region),
                                       job.target_image_id))
        return base.CopyOutcome(bytes_copied=copier.bytes_moved, details={
            'ranges': copier.ranges, 'copied': copier.copied,
            'skipped': copier.skipped, 'rechecked': copier.rechecked,
            'allocated_bytes': copier.allocated,
            'workers': self._opts.workers,
            'copy_seconds': round(copy_seconds, 3),
            'attach_seconds': round(time.monotonic() - started -
                                    copy_seconds, 3)})

    def cleanup(self, job, checkpoint=None):
        region = job.target.region
        pool = self.pool(region)
        if not pool or not job.target_image_id:
            return None
        checkpoint = checkpoint or {}
        created = checkpoint.get('target_image_id') == job.target_image_id \
            and checkpoint.get('created')
        rados, rbd = _modules()
        try:
            with self._cluster(job, region, 'target') as dst, \
                    dst.ioctx(pool) as ioctx:
                return remove_image(rbd, ioctx, job.target_image_id,
                                    job.clone_id, created)
        except NotServed as e:
            raise _unavailable(job, region, e) from e
        except (rados.Error, rbd.Error) as e:
            raise _unavailable(job, region, repr(e)) from e

    # -- attaching ---------------------------------------------------------
    def _refused(self, job):
        LOG.warning('Clone %s: %s refused the RBD location of image %s (see '
                    'its location_import task)', job.clone_id,
                    job.target.region, job.target_image_id)
        raise LocationRefused(
            f"{job.target.region} refused the copied RBD image as the "
            f"image's data: either it does not hash to the source's "
            f"{job.source_image.get('os_hash_algo')} value, or its Glance "
            f"does not store in the pool [{GROUP}] regions declares; the "
            f"copy was removed")


def remove_image(rbd, ioctx, name, clone_id, created=False):
    """Removes the RBD image ``name`` and its snapshots if it is this
    clone's (marked with ``clone_id``, or ``created`` by it per its
    checkpoint); returns the number of things removed (0: none there, or
    not ours).
    """
    try:
        with rbd.Image(ioctx, name) as img:
            try:
                mark = img.metadata_get(MARK)
            except KeyError:
                mark = None
            if mark != clone_id and not (mark is None and created):
                LOG.warning('Clone %s: the RBD image %s is not this '
                            'clone\'s (mark %s): left in place', clone_id,
                            name, mark)
                return 0
            removed = 0
            for snap in list(img.list_snaps()):
                if img.is_protected_snap(snap['name']):
                    img.unprotect_snap(snap['name'])
                img.remove_snap(snap['name'])
                removed += 1
    except rbd.ImageNotFound:
        return 0
    try:
        rbd.RBD().remove(ioctx, name)
    except rbd.ImageNotFound:
        return removed
    LOG.info('Clone %s: removed RBD image %s and %d snapshots', clone_id,
             name, removed)
    return removed + 1


class _Copier:
    """Copies one image range by range; progress, checkpoints and the claim
    check stay on the calling thread.
    """

    def __init__(self, strategy, job, src, dst, progress, checkpoint):
        self.job, self.src, self.dst = job, src, dst
        self.progress = progress
        opts = strategy._opts
        self.src_pool = strategy.pool(job.source.region)
        self.dst_pool = strategy.pool(job.target.region)
        self.range_bytes = opts.range_mb * MiB
        self.io_bytes = opts.io_mb * MiB
        self.workers = opts.workers
        self.watch_grace = opts.watch_grace
        ours = checkpoint.get('target_image_id') == job.target_image_id
        self.created = bool(ours and checkpoint.get('created'))
        self.recorded = set(checkpoint.get('done') or ()) if ours and \
            checkpoint.get('range_bytes') == self.range_bytes else set()
        self.copied = self.skipped = self.rechecked = 0
        self.bytes_moved = 0
        self.allocated = 0
        self.ranges = 0
        self._lock = threading.Lock()
        self._inflight = 0
        self._stop = threading.Event()
        _, self.rbd = _modules()

    # -- the destination ----------------------------------------------------
    def _checkpoint(self, finished):
        return {'target_image_id': self.job.target_image_id,
                'created': True, 'range_bytes': self.range_bytes,
                'ranges': self.ranges, 'done': sorted(finished)}

    def _open_destination(self, dst_io, size, order):
        """The destination image, created if missing (and marked); refuses
        one that is not this clone's or is in use.  Returns (image, whether
        its snapshot already exists).
        """
        rbd, name = self.rbd, self.job.target_image_id
        try:
            img = rbd.Image(dst_io, name)
        except rbd.ImageNotFound:
            # recorded before it exists: a copy killed between the two
            # still knows the image is its own
            self.progress(0, self.allocated,
                          checkpoint=self._checkpoint(()))
            features = self.dst.client.conf_get('rbd_default_features')
            features = int(features) if features and int(features) else \
                rbd.RBD_FEATURE_LAYERING
            rbd.RBD().create(dst_io, name, size, order=order,
                             old_format=False, features=features)
            self.created = True
            img = rbd.Image(dst_io, name)
            img.metadata_set(MARK, self.job.clone_id)
            return img, False
        try:
            self._check_destination(img, size)
            snaps = [s['name'] for s in img.list_snaps()]
            return img, SNAPSHOT in snaps
        except BaseException:
            img.close()
            raise

    def _check_destination(self, img, size):
        name = f'{self.dst_pool}/{self.job.target_image_id}'
        region = self.job.target.region
        try:
            mark = img.metadata_get(MARK)
        except KeyError:
            mark = None
        if mark != self.job.clone_id and not (mark is None and self.created):
            raise DestinationRefused(
                f"the RBD image {name} already exists in {region}'s Ceph "
                f"and is not this clone's copy; it was left untouched")
        if mark is None:
            img.metadata_set(MARK, self.job.clone_id)
        me = self.dst.client.get_instance_id()
        deadline = time.monotonic() + self.watch_grace
        while True:
            others = [w for w in img.watchers_list() if w.get('id') != me]
            if not others or time.monotonic() >= deadline:
                break
            LOG.info('Clone %s: %s is watched by %d other clients; waiting '
                     'for a dead one\'s watch to time out', self.job.clone_id,
                     name, len(others))
            self.progress(0, self.allocated)     # still ours, still wanted?
            time.sleep(1.0)
        if others:
            raise DestinationRefused(
                f"the RBD image {name} in {region}'s Ceph is open by another "
                f"client ({len(others)} watchers): its writes would end up "
                f"in the copy")
        lockers = img.list_lockers() or {}
        if lockers and lockers.get('tag') != 'internal' and \
                lockers.get('lockers'):
            raise DestinationRefused(
                f"the RBD image {name} in {region}'s Ceph is locked "
                f"(rbd lock): it is not written")
        if img.size() != size:
            raise DestinationRefused(
                f"the RBD image {name} in {region}'s Ceph has "
                f"{img.size()} bytes, the source {size}")
        extra = [s['name'] for s in img.list_snaps()
                 if s['name'] != SNAPSHOT]
        if extra:
            raise DestinationRefused(
                f"the RBD image {name} in {region}'s Ceph has snapshots "
                f"this clone did not make ({', '.join(extra)})")

    # -- the copy -------------------------------------------------------
    def run(self):
        rbd, job = self.rbd, self.job
        image_id = job.source_image['id']
        try:
            with self.src.ioctx(self.src_pool) as src_io, \
                    self.dst.ioctx(self.dst_pool) as dst_io:
                try:
                    src_img = rbd.Image(src_io, image_id, snapshot=SNAPSHOT,
                                        read_only=True)
                except rbd.ImageNotFound as e:
                    raise SourceDataBroken(
                        f"the RBD snapshot {self.src_pool}/{image_id}@"
                        f"{SNAPSHOT} of the source image is gone from "
                        f"{job.source.region}'s Ceph") from e
                with src_img:
                    info = src_img.stat()
                    extents = []
                    src_img.diff_iterate(
                        0, info['size'], None,
                        lambda off, n, exists: exists and
                        extents.append((off, n)))
                    extents = merge(extents)
                    self.allocated = sum(n for _, n in extents)
                    ranges = split_ranges(extents, info['size'],
                                          self.range_bytes)
                    self.ranges = len(ranges)
                    dst_img, snapped = self._open_destination(
                        dst_io, info['size'], info['order'])
                    with dst_img:
                        if not snapped:
                            self._copy_ranges(src_img, dst_img, ranges)
                            dst_img.flush()
                            dst_img.create_snap(SNAPSHOT)
                        else:
                            self.skipped = len(ranges)
                            self.progress(self.allocated, self.allocated)
                        if not dst_img.is_protected_snap(SNAPSHOT):
                            dst_img.protect_snap(SNAPSHOT)
        except (self.src.rados.Error, rbd.Error) as e:
            if isinstance(e, (rbd.ImageNotFound,
                              self.src.rados.ObjectNotFound)):
                raise SourceDataBroken(
                    f"the RBD data of image {image_id} vanished from "
                    f"{job.source.region}'s Ceph during the copy") from e
            raise _unavailable(job, job.target.region, repr(e)) from e

    def _matches(self, src_img, dst_img, extents):
        for off, n in pieces(extents, self.io_bytes):
            if src_img.read(off, n) != dst_img.read(off, n):
                return False
        return True

    def _copy_ranges(self, src_img, dst_img, ranges):
        done = set()
        for i in sorted(self.recorded):
            if i < len(ranges) and self._matches(
                    src_img, dst_img, ranges[i][2]):
                done.add(i)
                self.rechecked += 1
        if len(done) != len(self.recorded):
            LOG.warning('Clone %s: %d checkpointed ranges do not match the '
                        'source in the destination; copying them again',
                        self.job.clone_id, len(self.recorded) - len(done))
        self.skipped = len(done)
        bytes_done = sum(sum(n for _, n in ranges[i][2]) for i in done)
        self.progress(bytes_done, self.allocated,
                      checkpoint=self._checkpoint(done))
        queue = [i for i in range(len(ranges)) if i not in done]
        pool = concurrent.futures.ThreadPoolExecutor(self.workers)
        running = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    i = queue.pop(0)
                    running[pool.submit(self._copy_range, src_img, dst_img,
                                        ranges[i])] = i
                ready, _ = concurrent.futures.wait(
                    running, timeout=0.5,
                    return_when=concurrent.futures.FIRST_COMPLETED)
                for f in ready:
                    i = running.pop(f)
                    moved = f.result()
                    done.add(i)
                    self.copied += 1
                    bytes_done += moved
                    with self._lock:
                        self._inflight -= moved
                    self.progress(bytes_done, self.allocated,
                                  checkpoint=self._checkpoint(done))
                if not ready:
                    with self._lock:
                        inflight = self._inflight
                    self.progress(bytes_done + inflight, self.allocated)
        except BaseException:
            self._stop.set()
            raise
        finally:
            pool.shutdown(wait=True)

    def _copy_range(self, src_img, dst_img, rng):
        offset, length, extents = rng
        # a range written again never keeps bytes of an earlier attempt
        dst_img.discard(offset, length)
        moved = 0
        for off, n in pieces(extents, self.io_bytes):
            if self._stop.is_set():
                raise exceptions.Interrupted('copy stopped')
            data = src_img.read(off, n)
            if len(data) != n:
                raise SourceDataBroken(
                    f"the RBD snapshot of image "
                    f"{self.job.source_image['id']} returned {len(data)} "
                    f"bytes at {off}, not {n}")
            dst_img.write(data, off)
            moved += n
            with self._lock:
                self._inflight += n
                self.bytes_moved += n
        return moved
