"""Opt-in: glance-clone's paste filter in RegionTwo's glance-api pipeline.

    tools/localcloud up --glance-clone-filter [URL]   # default \
http://127.0.0.1:19393
        [--glance-clone-filter-option KEY=VALUE ...]   # e.g. ca_file=/x.pem
    tools/localcloud up --no-glance-clone-filter

The choice is kept in the state dir (a plain ``up`` keeps it). When on,
RegionTwo's ``glance-api-paste.ini`` gets ``[filter:glance_clone]``
(``conductor.api.glance_filter:filter_factory``, ``clone_api_url = URL``
and the options given) before ``authtoken`` in its pipelines, and its \
glance-api imports the filter
from this source tree (``PYTHONPATH``; the filter needs only the standard
library and webob). Clone task calls at RegionTwo's image endpoint then go
to the clone-api at URL; everything else reaches Glance.
"""
import os
import re

REGION = 'RegionTwo'
DEFAULT_URL = 'http://127.0.0.1:19393'
FILTER = 'glance_clone'
STATE_FILE = 'glance-clone-filter.url'
#: The filter's options besides clone_api_url (conductor.api.glance_filter).
OPTIONS = ('timeout', 'max_request_body_size', 'public_endpoint', 'ca_file',
           'cert_file', 'key_file', 'insecure')
REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

_SECTION = re.compile(r'^\[(?P<name>[^\]]+)\]\s*$')


def add_arguments(parser):
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        '--glance-clone-filter', nargs='?', const=DEFAULT_URL, metavar='URL',
        help='put glance-clone\'s paste filter into %s\'s glance-api '
             'pipeline, sending clone tasks to the clone-api at URL '
             '(default %s); kept until --no-glance-clone-filter'
             % (REGION, DEFAULT_URL))
    group.add_argument('--no-glance-clone-filter', action='store_true',
                       help='take the filter out again')
    parser.add_argument(
        '--glance-clone-filter-option', action='append', default=[],
        metavar='KEY=VALUE', type=_option,
        help='an option of the filter (with --glance-clone-filter): %s'
             % ', '.join(OPTIONS))


def _option(text):
    import argparse
    key, sep, value = text.partition('=')
    key = key.strip()
    if not sep or key not in OPTIONS or not value.strip() or '\n' in value:
        raise argparse.ArgumentTypeError(
            '%r is not KEY=VALUE with KEY one of %s' % (text, ', '.join(
                OPTIONS)))
    return key, value.strip()


def _state_path(cloud):
    return os.path.join(cloud.state, STATE_FILE)


def remember(cloud, args):
    """Store what ``up`` was told (nothing told: keep the last choice)."""
    path = _state_path(cloud)
    options = getattr(args, 'glance_clone_filter_option', None) or []
    if options and not getattr(args, 'glance_clone_filter', None):
        raise SystemExit('localcloud: --glance-clone-filter-option needs '
                         '--glance-clone-filter')
    if getattr(args, 'no_glance_clone_filter', False):
        if os.path.exists(path):
            os.unlink(path)
    elif getattr(args, 'glance_clone_filter', None):
        with open(path, 'w') as f:
            f.write(args.glance_clone_filter + '\n')
            f.writelines('%s = %s\n' % kv for kv in options)


def _state(cloud):
    """(URL, [(key, value), ...]) of the stored choice; (None, [])."""
    try:
        with open(_state_path(cloud)) as f:
            lines = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return None, []
    if not lines:
        return None, []
    return lines[0], [tuple(p.strip() for p in line.split('=', 1))
                      for line in lines[1:]]


def url(cloud):
    return _state(cloud)[0]


def rewrite(text, clone_api_url, options=()):
    """The paste file without any glance_clone filter, then with it (before
    ``authtoken`` in every pipeline, with ``options``) when
    ``clone_api_url`` is set.
    """
    out, skipping = [], False
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            skipping = m.group('name') == 'filter:' + FILTER
        if skipping:
            continue
        key, sep, value = line.partition('=')
        words = value.split()
        if sep and 'authtoken' in words and not key.strip().startswith(
                'paste.'):
            words = [w for w in words if w != FILTER]
            if clone_api_url:
                words.insert(words.index('authtoken'), FILTER)
            line = '%s= %s' % (key, ' '.join(words))
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    if clone_api_url:
        out += ['', '[filter:%s]' % FILTER,
                '# glance-clone: clone tasks at this endpoint '
                '(tools/localcloud up --glance-clone-filter)',
                'paste.filter_factory = conductor.api.glance_filter:'
                'filter_factory',
                'clone_api_url = %s' % clone_api_url]
        out += ['%s = %s' % kv for kv in options]
    return '\n'.join(out) + '\n'


def apply(cloud, region, paste_path):
    """Bring ``paste_path`` in line with the stored choice; True if changed."""
    if region != REGION:
        return False
    with open(paste_path) as f:
        text = f.read()
    new = rewrite(text, *_state(cloud))
    if new == text:
        return False
    with open(paste_path, 'w') as f:
        f.write(new)
    return True


def service_env(cloud, region):
    """Extra environment of a glance-api: the source tree, when filtered."""
    if region == REGION and url(cloud):
        return {'PYTHONPATH': REPO_DIR}
    return {}


def describe(cloud):
    clone_api_url, options = _state(cloud)
    return {'region': REGION, 'clone_api_url': clone_api_url,
            'options': dict(options)}
