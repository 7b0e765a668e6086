import pytest

from conductor import opts
from tests.unit import fakes


@pytest.fixture
def conf(tmp_path):
    conf = opts.new_conf([], default_config_files=[], log=False)
    conf.set_override('connection', f'sqlite:///{tmp_path}/flows.sqlite',
                      group='persistence')
    conf.set_override('copy_retry_delay', 0, group='clone')
    conf.set_override('revert_timeout', 1, group='clone')
    conf.set_override('chunk_size', 4096, group='http_stream')
    return conf


@pytest.fixture
def cloud():
    return {'R1': fakes.FakeGlanceRegion('R1'),
            'R2': fakes.FakeGlanceRegion('R2')}
