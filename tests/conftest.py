"""Shared pytest wiring: functional tests are marked by their folder."""
import pathlib

import pytest

FUNCTIONAL = pathlib.Path(__file__).parent / 'functional'


def pytest_collection_modifyitems(config, items):
    for item in items:
        if FUNCTIONAL in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.functional)
