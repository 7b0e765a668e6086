"""One project's Swift account, reached with the clone's trust-scoped session.

A thin layer over python-swiftclient: each thread gets its own
``swiftclient.client.Connection`` (a Connection is not thread-safe) on the
same keystoneauth session.  swiftclient sends the session's token, retries
an answer 5xx or a broken connection, and on 401 invalidates the session and
tries once more with a fresh token.  No credential is ever held here: the
session is the user's trust, and the storage URL is public information.

Errors come out as :class:`SwiftError` with the HTTP status (``None`` when
Swift did not answer at all); their text names URLs and is for the
operator's log only.
"""
import logging
import threading
import urllib.parse

from swiftclient import client as swiftclient

# swiftclient logs every failed request (INFO) and every request (DEBUG) as
# a curl line with the first characters of the token: never into our logs.
# Failures reach the log through SwiftError, with the clone id.
logging.getLogger('swiftclient').setLevel(logging.WARNING)


class SwiftError(Exception):
    """Swift refused or did not answer; ``status`` is None for no answer."""

    def __init__(self, what, status=None, detail=''):
        super().__init__(f'{what}: {status or "no answer"} {detail}'.strip())
        self.status = status


class SwiftAccount:
    """A Swift account (``storage_url``) as seen by one keystoneauth
    session.
    """

    def __init__(self, region, storage_url, session, timeout=120.0,
                 retries=2):
        self.region = region
        self.storage_url = storage_url.rstrip('/')
        self._session = session
        self._timeout = timeout
        self._retries = retries
        self._local = threading.local()

    @property
    def account(self):
        return urllib.parse.unquote(self.storage_url.rsplit('/', 1)[-1])

    @property
    def cluster(self):
        u = urllib.parse.urlsplit(self.storage_url)
        return f'{u.scheme}://{u.netloc}'

    def _conn(self):
        conn = getattr(self._local, 'conn', None)
        if conn is None:
            conn = self._local.conn = swiftclient.Connection(
                session=self._session, preauthurl=self.storage_url,
                retries=self._retries, timeout=self._timeout,
                starting_backoff=0.5, max_backoff=4)
        return conn

    def _call(self, what, method, *args, **kwargs):
        try:
            return getattr(self._conn(), method)(*args, **kwargs)
        except swiftclient.ClientException as e:
            raise SwiftError(what, e.http_status,
                             f'{e.http_reason or ""} {e.msg}') from e
        except Exception as e:
            # connection errors, after swiftclient's retries
            self._local.conn = None
            raise SwiftError(what, None, type(e).__name__) from e

    # -- reading --------------------------------------------------------------
    def head(self, container, obj):
        """Headers of the object (lower-case keys), or None if absent."""
        try:
            return dict(self._call(f'HEAD {container}/{obj}', 'head_object',
                                   container, obj))
        except SwiftError as e:
            if e.status == 404:
                return None
            raise

    def listing(self, container, prefix):
        """[{name, bytes, hash}] of objects named ``prefix...``, in order
        ([] when the container does not exist).
        """
        try:
            _, objects = self._call(f'GET {container}', 'get_container',
                                    container, prefix=prefix,
                                    full_listing=True)
        except SwiftError as e:
            if e.status == 404:
                return []
            raise
        return [{'name': o['name'], 'bytes': int(o['bytes']),
                 'hash': o['hash']} for o in objects]

    def get_stream(self, container, obj, chunk_size, byte_range=None):
        """(body, chunks) of the object or of ``(offset, length)`` of it;
        close ``body`` when done.
        """
        headers = {}
        if byte_range is not None:
            headers['Range'] = 'bytes=%d-%d' % (
                byte_range[0], byte_range[0] + byte_range[1] - 1)
        _, body = self._call(f'GET {container}/{obj}', 'get_object',
                             container, obj, resp_chunk_size=chunk_size,
                             headers=headers)
        return body, iter(body)

    # -- writing --------------------------------------------------------------
    def ensure_container(self, container):
        try:
            self._call(f'PUT {container}', 'put_container', container)
        except SwiftError as e:
            if e.status != 404:
                raise
            # an account nobody used yet: reading it makes Swift create it
            # (account_autocreate), then the container can be made
            self._call('HEAD account', 'head_account')
            self._call(f'PUT {container}', 'put_container', container)

    def put(self, container, obj, chunks, etag=None):
        """PUT an iterable of chunks (chunked transfer); Swift refuses it
        (422) unless the bytes' md5 is ``etag`` (when given).
        """
        return self._call(f'PUT {container}/{obj}', 'put_object', container,
                          obj, chunks, etag=etag,
                          content_type='application/octet-stream')

    def copy_from(self, container, obj, source, src_container, src_obj,
                  etag=None, byte_range=None):
        """Server-side copy of ``source``'s object (or of a byte range of
        it) into ``container/obj`` here; returns the new ETag.
        """
        headers = {'X-Copy-From': '/%s/%s' % (
            urllib.parse.quote(src_container), urllib.parse.quote(src_obj))}
        if byte_range is not None:
            headers['Range'] = 'bytes=%d-%d' % (
                byte_range[0], byte_range[0] + byte_range[1] - 1)
        if source.account != self.account:
            headers['X-Copy-From-Account'] = source.account
        return self._call(f'PUT {container}/{obj} (copy)', 'put_object',
                          container, obj, None, content_length=0, etag=etag,
                          headers=headers)

    def put_manifest(self, container, obj, prefix):
        self._call(f'PUT {container}/{obj} (manifest)', 'put_object',
                   container, obj, None, content_length=0,
                   content_type='application/octet-stream',
                   headers={'X-Object-Manifest': f'{container}/{prefix}'})

    def delete(self, container, obj):
        """True if deleted now, False if it was not there."""
        try:
            self._call(f'DELETE {container}/{obj}', 'delete_object',
                       container, obj)
        except SwiftError as e:
            if e.status == 404:
                return False
            raise
        return True

    def delete_container(self, container):
        """True if deleted now, False if it was not there (or not empty)."""
        try:
            self._call(f'DELETE {container}', 'delete_container', container)
        except SwiftError as e:
            if e.status in (404, 409):
                return False
            raise
        return True
