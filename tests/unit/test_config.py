"""Configuration: one list_opts, a sample file kept honest."""
import pathlib
import subprocess
import sys

from conductor import opts

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_sample_config_is_up_to_date(tmp_path):
    out = tmp_path / 'sample.conf'
    gen = pathlib.Path(sys.executable).with_name('oslo-config-generator')
    subprocess.run([str(gen), '--config-file',
                    str(ROOT / 'etc/oslo-config-generator/glance-clone.conf'),
                    '--output-file', str(out)], check=True, cwd=ROOT)
    committed = (ROOT / 'etc/glance-clone.conf.sample').read_text()
    assert out.read_text() == committed, (
        'etc/glance-clone.conf.sample is stale: regenerate it with '
        'oslo-config-generator --config-file '
        'etc/oslo-config-generator/glance-clone.conf')


def test_every_registered_option_is_listed(conf):
    listed = set(opts.all_option_names())
    for group in ('clone', 'metadata', 'http_stream', 'persistence'):
        for name in conf[group]:
            assert f'{group}.{name}' in listed


def test_list_opts_is_the_entry_point_target():
    from importlib import metadata as md
    eps = md.entry_points(group='oslo.config.opts')
    assert any(ep.name == 'glance-clone' and ep.load() is opts.list_opts
               for ep in eps)


def test_config_file_values_are_read(tmp_path):
    f = tmp_path / 'c.conf'
    f.write_text('[clone]\ncopy_attempts = 7\n[metadata]\n'
                 'default_visibility = shared\n')
    conf = opts.new_conf(['--config-file', str(f)], default_config_files=[],
                         log=False)
    assert conf.clone.copy_attempts == 7
    assert conf.metadata.default_visibility == 'shared'


def test_http_strategy_is_found_through_its_entry_point(conf):
    from clone_flows import stores
    from clone_flows.stores import http
    assert isinstance(stores.load_strategies(conf)['http'],
                      http.HttpStreamStrategy)
