"""Property-based fuzzing of the live clone-api from its own OpenAPI document.

schemathesis generates requests (valid and invalid bodies, query strings,
path ids, missing and broken tokens) for every operation of
``/v2/openapi.json`` and sends them to a real clone-api (gunicorn,
keystonemiddleware, a real token of the local Keystone). What must hold:
no 5xx; every 4xx is a JSON error whose message is one sentence; the answers
match the document; the service still answers afterwards.

No conductor runs, so no clone starts: a request that passes every check
(the document's example, with a non-existent image) leaves a pending task
and a trust, which the module's teardown deletes with the jobs it posted.
"""
import collections
import re

import hypothesis
import pytest
import requests
import schemathesis
from schemathesis import checks as st_checks
from schemathesis.generation import GenerationMode

from conductor.api.app import ROUTES
from tests.functional.test_api import _clone_body
from tests.functional.test_api import _post
from tests.functional.test_api import delete_trusts_and_jobs
from tests.functional.test_api import running_api
from tests.functional.test_api import token
from tests.functional.test_api import zookeeper_nodes

#: Examples per operation and kind (valid, invalid): the run stays well under
#: two minutes on this 2-core machine (see the module's report line).
MAX_EXAMPLES = 100
STATS = {'requests': collections.Counter(), 'findings': [],
         'malformed_http': 0}
_EXCEPTION_NAME = re.compile(r'\b[A-Z][A-Za-z]+(Error|Exception)\b')


@pytest.fixture(scope='module')
def fuzz_api(cloud, tmp_path_factory):
    with running_api(cloud, tmp_path_factory.mktemp('fuzz'),
                     conductor=False) as api:
        yield api
        delete_trusts_and_jobs(cloud, api)


class TokenAuth(requests.auth.AuthBase):
    """Puts the token on every request, also on those where schemathesis
    leaves out the security header (its invalid-input cases would otherwise
    all stop at auth_token's 401); keeps it out of test reports.
    """

    def __init__(self, tok):
        self.token = tok

    def __call__(self, request):
        request.headers['X-Auth-Token'] = self.token
        return request

    def __repr__(self):
        return '<TokenAuth>'


@pytest.fixture(scope='module')
def auth(cloud):
    return TokenAuth(token(cloud, 'demo'))


@pytest.fixture(scope='module')
def api_schema(fuzz_api, auth):
    schema = schemathesis.openapi.from_url(
        fuzz_api['url'] + '/v2/openapi.json', auth=auth, timeout=30)
    return schema


def _one_sentence(response):
    """The 4xx body is Glance's JSON error with a one-sentence message."""
    body = response.json()
    message = body['error']['message']
    assert isinstance(message, str) and message.strip(), body
    assert '\n' not in message and len(message) < 600, message
    assert not _EXCEPTION_NAME.search(message), message
    assert 'Traceback' not in message and 'AUTH_' not in message, message


def _malformed_http(response):
    """gunicorn's own 400 for a request it cannot parse as HTTP (e.g. a
    Content-Length header the fuzzer mangled): it never reached clone-api.
    """
    return response.status_code == 400 and \
        'text/html' in response.headers.get('Content-Type', '') and \
        'Invalid HTTP' in response.text


def _check(case, base_url, auth):
    response = case.call(base_url=base_url, auth=auth, timeout=30)
    STATS['requests'][response.status_code] += 1
    assert response.status_code < 500, response.text[:300]
    if _malformed_http(response):
        STATS['malformed_http'] += 1
        return
    if 400 <= response.status_code < 500:
        _one_sentence(response)
    case.validate_response(response, checks=[
        st_checks.not_a_server_error,
        st_checks.status_code_conformance,
        st_checks.content_type_conformance,
        st_checks.response_schema_conformance,
    ])


#: (path, method, kind) fuzzed: every route with valid input; the routes
#: that take input (a body, a query, a path id) with invalid input too.
RUNS = [(p, m, GenerationMode.POSITIVE) for p, m, _ in ROUTES] + \
    [(p, m, GenerationMode.NEGATIVE) for p, m, _ in ROUTES
     if p.startswith('/v2/tasks')]


@pytest.mark.parametrize('path,method,mode', RUNS, ids=[
    f'{m} {p} {"valid" if mode.is_positive else "invalid"}'
    for p, m, mode in RUNS])
def test_fuzzed_requests_never_get_a_5xx_and_every_4xx_is_one_sentence(
        api_schema, fuzz_api, auth, path, method, mode):
    operation = api_schema[path][method]
    failures = []

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None,
                         database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def run(case):
        try:
            _check(case, fuzz_api['url'], auth)
        except Exception as e:
            failures.append(f'{case.method} {case.formatted_path} '
                            f'{case.body!r:.120}: {e!r:.300}')
            raise
    try:
        run()
    finally:
        STATS['findings'].extend(failures)
    assert not failures


def test_the_service_still_answers_after_the_fuzz_run(cloud, fuzz_api,
                                                      auth):
    counts = STATS['requests']
    total = sum(counts.values())
    print(f'\nfuzz run: {total} requests, by status '
          f'{dict(sorted(counts.items()))}, '
          f'{len(STATS["findings"])} findings, '
          f'{STATS["malformed_http"]} refused by gunicorn as malformed HTTP')
    for finding in STATS['findings']:
        print('  ', finding)
    assert total >= len(RUNS) * 5        # every run sent requests
    assert not any(code >= 500 for code in counts)
    assert fuzz_api['proc'].poll() is None
    tok = auth.token
    assert _post(fuzz_api, tok, _clone_body()).status_code == 201
    # The run's token reached nothing the service stores.
    tok = tok.encode()
    for path, blob in zookeeper_nodes(cloud):
        assert tok not in blob, f'a token is in znode {path}'
