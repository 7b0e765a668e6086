"""A clone's persisted graph as an operator reads it: every step's state,
times, attempts, a short result and its failure (``clone-manage flow
show``), the transitions in order (``flow history``), and the graph itself
(:mod:`conductor.flowgraph`).

Reads the clone's flow as persisted (:mod:`conductor.flowtables`: DESIGN.md
section 7, the task record is the user's view, the logbook the engine's).
Times come from the history the conductors record
(:mod:`conductor.worker.history`); TaskFlow itself keeps none.
"""
import datetime
import logging

from clone_flows import constants as c
from conductor import flowtables

LOG = logging.getLogger(__name__)

#: Result keys never shown, whatever the step (a step's result holds ids
#: and image metadata, but a summary must not be where one slips through).
SECRET_WORDS = ('password', 'secret', 'token', 'key', 'credential', 'auth',
                'trust')
#: Longest result summary shown.
SUMMARY_LENGTH = 80
#: Result keys shown first when a result is a dict.
SUMMARY_KEYS = ('id', 'image_id', 'status', 'strategy', 'size', 'reused',
                'region', 'bytes_to_move', 'name')


def _is_secret(key):
    key = str(key).lower()
    return any(w in key for w in SECRET_WORDS)


def summarize(value, limit=SUMMARY_LENGTH):
    """One short line for a step's result: scalars as they are, a dict as
    its identifying ``key=value`` pairs (never a key that names a secret),
    a list as its length.  Truncated to ``limit`` characters.
    """
    if value is None:
        text = ''
    elif isinstance(value, dict):
        keys = [k for k in SUMMARY_KEYS if k in value] or sorted(
            (k for k in value if not isinstance(value[k], (dict, list))),
            key=str)
        parts = [f'{k}={value[k]}' for k in keys
                 if not _is_secret(k) and not isinstance(value[k],
                                                         (dict, list))]
        text = ' '.join(parts) if parts else f'{len(value)} keys'
    elif isinstance(value, (list, tuple)):
        text = f'{len(value)} items'
    else:
        text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + '…'


def iso(t):
    """Seconds since the epoch as ISO 8601 UTC (``-`` for none)."""
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(
        t, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


#: TaskFlow's name of the pseudo-atom that holds a flow's injected inputs.
INJECTOR = '_TaskFlow_INJECTOR'


def order(fd):
    """Atom names in the order of the clone's graph: as recorded with the
    flow; for a clone saved before that was recorded, rebuilt from the
    flow detail's factory, or by the known step order if it cannot be.
    """
    recorded = (fd.meta or {}).get(flowtables.GRAPH_ORDER)
    if recorded:
        return list(recorded)
    try:
        # Imported here: only such older clones need TaskFlow's engines
        # (~0.4 s of a cold command's start-up).
        from conductor import runner
        import taskflow.engines
        flow = taskflow.engines.flow_from_detail(fd)
        return [a.name for a in runner.atoms(flow)]
    except Exception:
        LOG.debug('Could not rebuild the graph of %s', fd.uuid, exc_info=True)
        known = list(c.STEP_NAMES)
        return sorted((ad.name for ad in fd),
                      key=lambda n: (known.index(n) if n in known
                                     else len(known), n))


def _times(entries):
    """{atom: (first start, end of the last run, runs)} from the history:
    a run ends SUCCESS or FAILURE; a later revert is not part of it.
    """
    out = {}
    for e in entries:
        if e['kind'] == flowtables.FLOW:
            continue
        start, end, runs = out.get(e['name'], (None, None, 0))
        if e['state'] == 'RUNNING':
            runs += 1
            start = e['time'] if start is None else start
            end = None
        elif e['state'] in ('SUCCESS', 'FAILURE'):
            end = e['time']     # its execution's end (not a later revert)
        out[e['name']] = (start, end, runs)
    return out


#: A step whose detail no engine has saved yet.
_NOT_PREPARED = flowtables.AtomRecord({
    'name': '-', 'state': 'PENDING', 'intention': 'EXECUTE',
    'atom_type': 'TASK_DETAIL', 'results': None, 'failure': None,
    'revert_failure': None, 'meta': None})


def atom_rows(fd, names=None):
    """One dict per step of the clone (a :class:`flowtables.FlowRecord`),
    in graph order: name, state,
    intention, start, end, duration_s, attempts, result, failure,
    traceback (the last two for a step that failed or whose revert did).
    """
    by_name = {ad.name: ad for ad in fd if ad.name != INJECTOR}
    # every step of the graph: one no engine has prepared yet (a clone
    # still waiting for a conductor) is PENDING
    names = list(names or order(fd)) + sorted(set(by_name) - set(names or ()))
    seen = set()
    times = _times(flowtables.entries(fd.meta))
    rows = []
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        ad = by_name.get(name) or _NOT_PREPARED
        start, end, runs = times.get(name, (None, None, 0))
        failure = ad.failure or ad.revert_failure
        result = ad.results if ad.state == 'SUCCESS' else None
        if ad.is_retry:
            # its results are its history: one (result, failures) per try
            tries = len(ad.results or ())
            result = f'{tries} {"try" if tries == 1 else "tries"}' \
                if tries else None
        rows.append({
            'name': name,
            'state': ad.state,
            'intention': ad.intention,
            'start': iso(start),
            'end': iso(end) if start is not None or end is not None else None,
            'duration_s': round(end - start, 3) if start and end else None,
            'attempts': runs,
            'result': summarize(result),
            'failure': (failure.exception_str.splitlines() or [''])[0][:200]
            if failure else '',
            'traceback': failure.pformat(traceback=True) if failure else '',
            'progress': ((ad.meta or {}).get('progress_details') or {}).get(
                'details') if name == c.COPY_DATA else None,
        })
    return rows


def summary(fd, task=None):
    """The clone as a whole: flow state, attempts, who ran it last, and the
    user's task status when its record is at hand.
    """
    meta = fd.meta or {}
    entries = flowtables.entries(meta)
    store = meta.get('store') or {}
    return {
        'clone_id': fd.uuid,
        'flow_state': fd.state,
        'finished': fd.finished,
        'attempts': int(meta.get('attempts', 0)),
        'conductor': entries[-1]['conductor'] if entries else None,
        'source': f"{store.get(c.SOURCE_REGION)}/"
                  f"{store.get(c.SOURCE_IMAGE_ID)}",
        'target_region': store.get(c.TARGET_REGION),
        'gave_up': meta.get('gave_up'),
        'needs_sweep': meta.get('needs_sweep'),
        'task_status': (task or {}).get('status'),
    }


def history_rows(fd):
    """The recorded transitions, oldest first."""
    return [dict(e, time=iso(e['time'])) for e in
            flowtables.entries(fd.meta)]
