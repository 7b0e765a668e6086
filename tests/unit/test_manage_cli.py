"""clone-manage on cliff: every command answers --help, output formats
parse, exit codes are 0 / 1 (failed operation) / 2 (usage), and expected
errors are one line without a traceback.
"""
import json
import pathlib
import subprocess
import sys

import pytest

from conductor.cmd import manage
from conductor import persistence
from tests.unit import clones

BIN = pathlib.Path(sys.executable).parent


def commands():
    return sorted(manage.COMMANDS)


def run(conf_file, *args, timeout=120):
    return subprocess.run([str(BIN / 'clone-manage'), '--config-file',
                           str(conf_file), *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def conf_file(tmp_path):
    path = tmp_path / 'c.conf'
    path.write_text(
        f'[DEFAULT]\nstate_path = {tmp_path}\n'
        f'[persistence]\nconnection = sqlite:///{tmp_path}/flows.sqlite\n'
        f'[database]\nconnection = sqlite:///{tmp_path}/tasks.sqlite\n'
        # nothing listens on port 9 (discard): ZooKeeper is unreachable
        f'[jobboard]\nzookeeper_hosts = 127.0.0.1:9\nsession_timeout = 2\n')
    return path


def test_the_former_commands_are_still_there():
    assert {'clone', 'copies', 'sweep', 'jobs', 'db sync', 'tasks purge',
            'tasks fail-orphans'} <= set(commands())


@pytest.mark.parametrize('name', commands())
def test_every_command_answers_help(name, capsys):
    try:
        code = manage.main([*name.split(), '--help'])
    except SystemExit as e:
        code = e.code
    assert code == 0
    assert f'usage: clone-manage {name}' in capsys.readouterr().out


def test_the_console_script_answers_help():
    r = subprocess.run([str(BIN / 'clone-manage'), 'flow', 'show', '--help'],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and '--watch' in r.stdout


def test_an_unknown_command_is_a_usage_error(conf_file):
    r = run(conf_file, 'flow', 'frobnicate')
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "clone-manage: 'flow frobnicate' is not a clone-manage command; see "
        "clone-manage --help"]


def test_a_bad_duration_is_a_usage_error(conf_file):
    r = run(conf_file, 'flow', 'purge', '--older-than', 'soon')
    assert r.returncode == 2 and "'soon' is not a duration" in r.stderr


def test_an_unknown_clone_is_one_line_and_exit_1(conf_file):
    r = run(conf_file, 'flow', 'show', 'no-such-clone')
    assert r.returncode == 1
    assert r.stderr.strip() == ('clone-manage: no clone no-such-clone in '
                                'this persistence')


def test_an_unreachable_zookeeper_is_one_line_and_exit_1(conf_file):
    r = run(conf_file, 'job', 'list')
    assert r.returncode == 1
    assert r.stderr.strip() == ('clone-manage: ZooKeeper (127.0.0.1:9) '
                                'cannot be reached: no answer within 2 s')


def test_an_unreachable_database_is_one_line_and_exit_1(tmp_path):
    path = tmp_path / 'db.conf'
    path.write_text('[persistence]\nconnection = '
                    'mysql+pymysql://nobody:x@127.0.0.1:9/none\n')
    r = run(path, 'flow', 'show', 'x')
    assert r.returncode == 1
    [line] = r.stderr.strip().splitlines()
    assert line.startswith('clone-manage: the database cannot be reached: ')
    assert 'Traceback' not in r.stderr and 'nobody:x' not in r.stderr


def test_an_unexpected_error_is_one_line_and_its_traceback_goes_to_the_log(
        conf_file, tmp_path):
    log = tmp_path / 'manage.log'
    conf_file.write_text(conf_file.read_text() + f'\n[DEFAULT]\nlog_file = '
                         f'{log}\n')
    conf = _conf(conf_file)
    backend = persistence.get_backend(conf)
    fd = clones.stored_clone(conf, backend)
    backend.close()
    # the graph's file in a directory that does not exist: an OSError
    r = run(conf_file, 'flow', 'graph', fd.uuid, '-o',
            str(tmp_path / 'missing' / 'g.dot'))
    assert r.returncode == 1
    [line] = r.stderr.strip().splitlines()
    assert line.startswith('clone-manage: FileNotFoundError: ')
    assert 'Traceback' in log.read_text()


def _conf(conf_file):
    from conductor import opts
    return opts.new_conf(['--config-file', str(conf_file)],
                         default_config_files=[], log=False)


def test_flow_show_json_lists_every_step_with_its_state_and_failure(
        conf_file):
    conf = _conf(conf_file)
    backend = persistence.get_backend(conf)
    fd = clones.stored_clone(
        conf, backend, flow_state='REVERTED',
        states={'clone-hold-trust': 'REVERTED', 'clone-authorize': 'FAILURE'},
        failures={'clone-authorize': clones.failure('no such image')},
        meta={'history': [[1000.0, 'task', 'clone-hold-trust', 'RUNNING',
                           'c-1'],
                          [1001.5, 'task', 'clone-hold-trust', 'SUCCESS',
                           'c-1']]})
    backend.close()
    r = run(conf_file, 'flow', 'show', fd.uuid, '-f', 'json', '--traceback')
    assert r.returncode == 0, r.stderr
    rows = {row['Step']: row for row in json.loads(r.stdout)}
    assert set(rows) == {ad.name for ad in fd if ad.name[0] != '_'}
    assert rows['clone-hold-trust']['State'] == 'REVERTED'
    assert rows['clone-hold-trust']['Duration (s)'] == 1.5
    assert rows['clone-hold-trust']['Attempts'] == 1
    assert rows['clone-authorize']['Failure'] == 'no such image'
    assert 'RuntimeError: no such image' in \
        rows['clone-authorize']['Traceback']
    assert rows['clone-activate']['State'] == 'PENDING'
    r = run(conf_file, 'flow', 'show', fd.uuid, '-f', 'value', '-c', 'Step')
    assert r.stdout.split()[0] == 'clone-hold-trust'
    r = run(conf_file, 'flow', 'history', fd.uuid, '-f', 'json')
    assert [(h['State'], h['Conductor']) for h in json.loads(r.stdout)] == [
        ('RUNNING', 'c-1'), ('SUCCESS', 'c-1')]


#: An image name as Glance accepts it from any user: a screen clear, a
#: window title, a bell and a right-to-left override.
EVIL_NAME = 'evil\x1b[2J\x1b]0;owned\x07\u202eend'


def test_flow_show_never_sends_a_users_control_characters_to_the_terminal(
        conf_file):
    conf = _conf(conf_file)
    backend = persistence.get_backend(conf)
    fd = clones.stored_clone(
        conf, backend, states={'clone-authorize': 'SUCCESS'},
        results={'clone-authorize': {'id': 'img-1', 'name': EVIL_NAME}},
        failures={'clone-check-metadata': clones.failure(
            f'image {EVIL_NAME} is encrypted')})
    backend.close()
    for fmt in ('table', 'value', 'csv'):
        r = run(conf_file, 'flow', 'show', fd.uuid, '-f', fmt)
        assert r.returncode == 0, r.stderr
        assert not set('\x1b\x07\u202e') & set(r.stdout), fmt
        shown = r.stdout.replace('\\\\', '\\')     # csv doubles a backslash
        assert '\\x1b[2J\\x1b]0;owned\\x07\\u202eend' in shown, fmt
    # machine formats keep the data as it is (JSON escapes it)
    r = run(conf_file, 'flow', 'show', fd.uuid, '-f', 'json')
    assert '\x1b' not in r.stdout
    rows = {row['Step']: row for row in json.loads(r.stdout)}
    assert rows['clone-authorize']['Result'] == f'id=img-1 name={EVIL_NAME}'


def test_flow_graph_colours_each_step_by_its_state(conf_file, tmp_path):
    from conductor import flowgraph
    conf = _conf(conf_file)
    backend = persistence.get_backend(conf)
    states = {'clone-hold-trust': 'REVERTED', 'clone-authorize': 'REVERTED',
              'clone-reserve-image': 'REVERT_FAILURE',
              'clone-copy-data': 'FAILURE'}
    fd = clones.stored_clone(conf, backend, flow_state='FAILURE',
                             states=states,
                             failures={'clone-copy-data': clones.failure()})
    backend.close()
    for ext in ('svg', 'png', 'dot'):
        out = tmp_path / f'g.{ext}'
        r = run(conf_file, 'flow', 'graph', fd.uuid, '-o', str(out))
        assert r.returncode == 0, r.stderr
        assert out.stat().st_size > 0
    fills = svg_fills((tmp_path / 'g.svg').read_text())
    for ad in fd:
        if ad.name[0] == '_':
            continue
        want = states.get(ad.name, 'PENDING')
        assert fills[ad.name] == flowgraph.COLOURS[want], ad.name
    assert (tmp_path / 'g.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    strokes = svg_fills((tmp_path / 'g.svg').read_text(), 'stroke')
    assert {n for n, s in strokes.items()
            if s == flowgraph.FAILED_BORDER} == {'clone-copy-data'}


def svg_fills(svg, attribute='fill'):
    """{node title: fill colour} of a Graphviz SVG (or another attribute
    of the node's shape).
    """
    import xml.etree.ElementTree as ET
    ns = {'s': 'http://www.w3.org/2000/svg'}
    fills = {}
    for g in ET.fromstring(svg).iter('{http://www.w3.org/2000/svg}g'):
        if g.get('class') != 'node':
            continue
        title = g.find('s:title', ns).text
        shape = g.find('s:path', ns)
        if shape is None:
            shape = g.find('s:polygon', ns)
        fills[title] = shape.get(attribute)
    return fills
