"""The ``openstack image clone`` plugin's client and output, on a fake
keystoneauth session (tests/functional/test_osc.py runs the real command).
"""
import io
import json

import pytest

from conductor.osc import client as client_mod
from conductor.osc.v2 import clone

CLONE_ID = '0d6b7c1e-7c2a-4e6e-9a55-0c3c1b0d2e11'
IMAGE_ID = '5a0d4a88-1f2b-4c36-8b0e-0e2d7c6e9f10'


class FakeResponse:
    def __init__(self, status, body=None, reason=''):
        self.status_code = status
        self.reason = reason
        self._body = body
        self.content = b'' if body is None else json.dumps(body).encode()

    def json(self):
        if self._body is None:
            raise ValueError('no body')
        return self._body


class FakeSession:
    def __init__(self, answers):
        self.answers = answers          # (method, url) -> FakeResponse
        self.calls = []

    def request(self, url, method, json=None, params=None, **kwargs):
        self.calls.append((method, url, json, params))
        return self.answers[(method, url.split('?')[0])]


def catalog_of(entries):
    return lambda service_type, region: entries.get((service_type, region))


def test_the_override_wins_over_the_catalog():
    session = FakeSession({('GET', 'http://override:9393/v2/tasks'):
                           FakeResponse(200, {'tasks': []})})
    cc = client_mod.CloneClient(
        session, catalog_of({('clone', 'R2'): 'http://cat/v2'}),
        default_region='R2', override='http://override:9393/v2/')
    assert cc.list() == []
    assert session.calls[0][3] == {'type': 'clone'}


def test_a_clone_service_in_the_catalog_is_used_for_the_region():
    session = FakeSession({('POST', 'http://clone-r3:9393/v2/tasks'):
                           FakeResponse(201, {'id': CLONE_ID})})
    cc = client_mod.CloneClient(
        session, catalog_of({('clone', 'R3'): 'http://clone-r3:9393/v2',
                             ('clone', 'R2'): 'http://clone-r2:9393'}),
        default_region='R2')
    cc.create({'source_region': 'R1'}, region='R3')
    assert session.calls == [('POST', 'http://clone-r3:9393/v2/tasks',
                              {'type': 'clone',
                               'input': {'source_region': 'R1'}}, None)]


def test_the_image_endpoint_serves_only_when_its_schema_knows_clone():
    schema = {'properties': {'type': {'enum': ['clone', 'import']}}}
    session = FakeSession({
        ('GET', 'http://glance-r2/v2/schemas/task'): FakeResponse(200, schema),
        ('GET', 'http://glance-r2/v2/tasks'): FakeResponse(200, {'tasks': []}),
        ('GET', 'http://glance-r3/v2/schemas/task'): FakeResponse(
            200, {'properties': {'type': {'enum': ['import']}}})})
    cc = client_mod.CloneClient(
        session, catalog_of({('image', 'R2'): 'http://glance-r2/',
                             ('image', 'R3'): 'http://glance-r3'}),
        default_region='R2')
    assert cc.list() == []
    with pytest.raises(client_mod.CloneClientError,
                       match="listing copies needs glance-clone's own API"):
        cc.copies(IMAGE_ID, 'R1')
    with pytest.raises(client_mod.CloneClientError,
                       match="the image service of region 'R3' does not run "
                             "clone tasks.*--os-clone-endpoint"):
        cc.list(region='R3')
    with pytest.raises(client_mod.CloneClientError,
                       match="region 'R4' has neither a clone nor an image"):
        cc.list(region='R4')


def test_list_follows_next_up_to_the_limit():
    base = 'http://c/v2/tasks'
    pages = iter([
        FakeResponse(200, {'tasks': [{'id': 'a'}, {'id': 'b'}],
                           'next': '/v2/tasks?marker=b'}),
        FakeResponse(200, {'tasks': [{'id': 'c'}], 'next': '/v2/tasks?m=c'}),
    ])

    class Paging(FakeSession):
        def request(self, url, method, **kwargs):
            self.calls.append((method, url, kwargs.get('params')))
            return next(pages)

    session = Paging({})
    cc = client_mod.CloneClient(session, catalog_of({}), override='http://c')
    assert [t['id'] for t in cc.list(limit=3, status='success')] == \
        ['a', 'b', 'c']
    assert session.calls[0][2] == {'type': 'clone', 'status': 'success',
                                   'limit': 3}
    assert session.calls[1][1] == base + '?marker=b'


def test_errors_are_the_services_sentence():
    session = FakeSession({
        ('POST', 'http://c/v2/tasks'): FakeResponse(400, {'error': {
            'code': 400, 'message': 'input.source_image_id is not a valid '
                                    'UUID'}}),
        ('GET', 'http://c/v2/tasks/' + CLONE_ID): FakeResponse(
            502, None, reason='Bad Gateway')})
    cc = client_mod.CloneClient(session, catalog_of({}), override='http://c')
    with pytest.raises(client_mod.CloneClientError) as e:
        cc.create({})
    assert str(e.value) == 'input.source_image_id is not a valid UUID'
    with pytest.raises(client_mod.CloneClientError,
                       match='^HTTP 502 Bad Gateway$'):
        cc.get(CLONE_ID)
    with pytest.raises(client_mod.CloneClientError, match='not a clone id'):
        cc.get('../../v2/images')
    assert len(session.calls) == 2       # the bad id never left


def test_names_resolve_to_one_image_in_the_source_region():
    answers = {}
    session = FakeSession(answers)
    cc = client_mod.CloneClient(
        session, catalog_of({('image', 'R1'): 'http://g1/v2'}),
        override='http://c')
    url = ('GET', 'http://g1/v2/images')
    answers[url] = FakeResponse(200, {'images': [{'id': IMAGE_ID}]})
    assert cc.find_image('cirros', 'R1') == IMAGE_ID
    assert session.calls[-1][3] == {'name': 'cirros', 'limit': 2}
    answers[url] = FakeResponse(200, {'images': [{'id': 'a'}, {'id': 'b'}]})
    with pytest.raises(client_mod.CloneClientError,
                       match="more than one image named 'cirros'"):
        cc.find_image('cirros', 'R1')
    answers[url] = FakeResponse(200, {'images': []})
    with pytest.raises(client_mod.CloneClientError,
                       match="no image named 'cirros' is visible"):
        cc.find_image('cirros', 'R1')
    calls = len(session.calls)
    assert cc.find_image(IMAGE_ID, 'R1') == IMAGE_ID     # an id as it is
    assert len(session.calls) == calls


def test_progress_bar_redraws_one_line_and_ends_full():
    out = io.StringIO()
    bar = clone.ProgressBar(out)
    running = {'status': 'processing', 'result': {'progress': {
        'bytes_done': 2 ** 20, 'bytes_total': 4 * 2 ** 20, 'percent': 25.0,
        'rate_bytes_per_s': 2 ** 20}}}
    bar.show({'status': 'pending', 'result': None})
    bar.show(running)
    bar.show(running)                       # unchanged: not drawn again
    bar.show({'status': 'processing', 'result': {
        'progress': running['result']['progress'],
        'waiting_since': '2026-11-30T12:00:00Z'}})
    bar.show({'status': 'success', 'result': {'image_id': 'x'}})
    bar.close()
    text = out.getvalue()
    assert text.count('\r') == 4 and text.endswith('\n')
    assert 'waiting for a conductor since 2026-11-30T12:00:00Z' in text
    assert '25% 1.0/4.0 MiB 1.0 MiB/s' in text
    assert '[' + '#' * 7 + '.' * 23 + ']' in text
    assert text.rstrip().endswith('[' + '#' * 30 + '] 100%')


def test_show_columns_flatten_input_and_result():
    columns, values = clone.task_row({
        'id': CLONE_ID, 'status': 'success', 'owner': 'p',
        'input': {'source_region': 'R1', 'target_region': 'R2',
                  'source_image_id': IMAGE_ID},
        'result': {'image_id': 'copy', 'os_hash_value': 'h'}})
    row = dict(zip(columns, values))
    assert (row['source_region'], row['target_region'], row['image_id'],
            row['os_hash_value'], row['progress']) == ('R1', 'R2', 'copy',
                                                       'h', '100%')
    assert row['result'].machine_readable() == {'image_id': 'copy',
                                                'os_hash_value': 'h'}


def test_the_plugin_is_found_by_openstack_through_its_entry_points():
    from importlib import metadata as md
    ext = [ep for ep in md.entry_points(group='openstack.cli.extension')
           if ep.name == 'image_clone']
    assert len(ext) == 1
    plugin = ext[0].load()
    assert plugin.API_NAME == 'image_clone'
    commands = {ep.name: ep.load() for ep in
                md.entry_points(group='openstack.image_clone.v2')}
    assert set(commands) == {'image_clone_create', 'image_clone_show',
                             'image_clone_list', 'image_clone_cancel',
                             'image_clone_copies'}
