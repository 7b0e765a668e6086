"""The clone graph's wiring, checked without running it."""
from taskflow.engines import helpers

from clone_flows import constants as c
from clone_flows import flow


def _atoms(f):
    for node, _ in f.iter_nodes():
        if hasattr(node, 'iter_nodes'):
            yield from _atoms(node)
            if node.retry is not None:
                yield node.retry
        else:
            yield node


def test_flow_needs_only_ids_and_transient_services():
    f = flow.clone_flow()
    assert set(f.requires) == {
        c.SERVICES, c.CLONE_ID, c.SOURCE_REGION, c.SOURCE_IMAGE_ID,
        c.TARGET_REGION, c.TRUST_ID, c.OVERRIDES, c.STRATEGY_NAME}


def test_flow_provides_the_data_of_each_step():
    assert set(flow.clone_flow().provides) == {
        c.SOURCE_IMAGE, c.CLONED_DEPENDENCIES, c.MAPPED_PROPERTIES,
        c.COPY_PLAN, c.TARGET_IMAGE_ID, c.COPY_RESULT,
        c.VERIFIED_HASH, c.SYNCED_PROPERTIES, c.CLONED_IMAGE}


def test_atoms_run_in_the_documented_order_with_stable_names():
    names = [a.name for a in _atoms(flow.clone_flow())]
    assert names == [c.HOLD_TRUST, c.AUTHORIZE, c.CLONE_DEPENDENCIES,
                     c.CHECK_METADATA,
                     c.PLAN_COPY, c.RESERVE_IMAGE, c.SYNC_PROPERTIES,
                     c.COPY_DATA, c.COPY_RETRY, c.RESERVE_RETRY, c.VERIFY,
                     c.ACTIVATE, c.RELEASE_TRUST]


def test_every_task_that_changes_the_world_has_its_own_revert():
    from taskflow import task
    changes = {c.HOLD_TRUST, c.RESERVE_IMAGE, c.COPY_DATA, c.SYNC_PROPERTIES,
               c.ACTIVATE}
    for a in _atoms(flow.clone_flow()):
        if a.name in changes:
            assert type(a).revert is not task.Task.revert, a.name


def test_factory_is_reimportable_by_its_dotted_name():
    name = 'clone_flows.flow.clone_flow'
    assert helpers._fetch_factory(name) is flow.clone_flow
    f = helpers._fetch_factory(name)(copy_attempts=5)
    assert f.name == c.CLONE_FLOW


def test_checkpoint_is_an_optional_input_of_the_copy_only():
    copy = [a for a in _atoms(flow.clone_flow()) if a.name == c.COPY_DATA][0]
    assert c.COPY_CHECKPOINT in copy.optional


def test_if_exists_graph_needs_the_mode_and_has_two_releases():
    f = flow.clone_flow(if_exists='reuse')
    assert c.IF_EXISTS in f.requires
    assert set(f.provides) == set(flow.clone_flow().provides) | {
        c.EXISTING_COPY}
    names = {a.name for a in _atoms(f)}
    assert names == {a.name for a in _atoms(flow.clone_flow())} | {
        c.FIND_COPY, c.RELEASE_TRUST_REUSED}


def test_dry_run_graph_needs_the_clone_inputs_and_reserves_nothing():
    f = flow.dry_run_flow()
    assert set(f.requires) == set(flow.clone_flow().requires) | {c.IF_EXISTS}
    names = {a.name for a in _atoms(f)}
    assert not names & {c.RESERVE_IMAGE, c.SYNC_PROPERTIES, c.COPY_DATA,
                        c.VERIFY, c.ACTIVATE}
    assert helpers._fetch_factory('clone_flows.flow.dry_run_flow') is \
        flow.dry_run_flow
