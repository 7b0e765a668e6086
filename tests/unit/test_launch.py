"""The console scripts' launcher: modules run on first use, not on import."""
import importlib.util
import sys

import pytest

from conductor.cmd import launch


@pytest.fixture
def package(tmp_path, monkeypatch):
    pkg = tmp_path / 'launchpkg'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'heavy.py').write_text(
        'import sys\nsys.modules[__name__].runs = '
        'getattr(sys.modules[__name__], "runs", 0) + 1\n'
        'def answer():\n    return 42\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    yield 'launchpkg.heavy'
    for name in ('launchpkg.heavy', 'launchpkg'):
        sys.modules.pop(name, None)


def test_module_runs_only_when_a_name_is_read(package):
    launch._import_on_first_use(package)
    stub = sys.modules[package]
    assert 'answer' not in stub.__dict__            # not run yet

    from launchpkg import heavy                     # noqa: F811
    import launchpkg.heavy                          # noqa: F401
    assert heavy is stub and 'answer' not in stub.__dict__

    assert heavy.answer() == 42                     # first use runs it
    assert heavy.runs == 1
    assert heavy.answer() == 42 and heavy.runs == 1  # once only


def test_missing_name_is_an_attribute_error(package):
    launch._import_on_first_use(package)
    heavy = sys.modules[package]
    with pytest.raises(AttributeError, match='no attribute'):
        heavy.nothing_here
    with pytest.raises(AttributeError):
        heavy.__wrapped__                           # dunders never run it


def test_an_imported_module_is_left_alone(package):
    importlib.import_module(package)
    real = sys.modules[package]
    launch._import_on_first_use(package)
    assert sys.modules[package] is real


@pytest.mark.parametrize('name', launch.RARELY_USED)
def test_rarely_used_modules_still_exist(name):
    # If a library moves one, the launcher would silently stop deferring it.
    assert importlib.util.find_spec(name) is not None
