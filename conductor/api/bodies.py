"""Request and response bodies, for clone-api and its glance-api filter.

Only the standard library and webob are imported: the filter
(:mod:`conductor.api.glance_filter`) loads this module inside glance-api's
own virtualenv.
"""
import json

#: Deepest nesting of arrays and objects in a request body (a clone request
#: needs 3 levels).
MAX_DEPTH = 32
TOO_LARGE = 'The request body is larger than this service accepts.'
MALFORMED = 'Malformed JSON in request body.'
TOO_DEEP = f'the request body is nested deeper than {MAX_DEPTH} levels'


class BodyError(Exception):
    """A body the service refuses: ``code`` and a one-sentence ``message``."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def read_capped(req, limit):
    """The request body, read only up to ``limit`` bytes (also without a
    Content-Length); :class:`BodyError` 413 beyond it. The body stays
    readable for the next application.
    """
    if req.content_length is not None:
        if req.content_length > limit:
            raise BodyError(413, TOO_LARGE)
        return req.body
    raw = req.body_file_raw.read(limit + 1) if req.is_body_readable else b''
    if len(raw) > limit:
        raise BodyError(413, TOO_LARGE)
    req.body = raw
    return raw


def parse_json(raw):
    """``raw`` (UTF-8 JSON) parsed; :class:`BodyError` 400 when it is not
    JSON or nests deeper than :data:`MAX_DEPTH`.
    """
    try:
        document = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        raise BodyError(400, MALFORMED)
    except RecursionError:
        raise BodyError(400, TOO_DEEP)
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise BodyError(400, TOO_DEEP)
        stack.extend((child, depth + 1) for child in children)
    return document


def error_body(code, title, message):
    """Glance's error document (python-glanceclient prints ``message``)."""
    return json.dumps({'error': {'code': code, 'title': title,
                                 'message': message}}).encode('utf-8')
