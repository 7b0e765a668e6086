"""The metadata policy, key by key (doc/source/architecture.rst, section
"The metadata policy").
"""
import pytest

from clone_flows import metadata

COPIED = ['architecture', 'os_distro', 'os_version', 'os_type',
          'os_secure_boot', 'hw_disk_bus', 'hw_scsi_model', 'trait:CUSTOM_X',
          'img_config_drive', 'owner_specified.openstack.sha256', 'my_prop',
          'hypervisor_type', 'description']
SKIPPED = ['id', 'owner', 'locations', 'stores', 'status', 'checksum',
           'os_hash_algo', 'os_hash_value', 'size', 'virtual_size',
           'created_at', 'updated_at', 'os_glance_importing_to_stores',
           'os_glance_failed_import', 'direct_url', 'file', 'schema', 'self',
           'img_signature', 'img_signature_hash_method',
           'img_signature_key_type', 'clone_source_region',
           'clone_source_image_id', 'clone_id']
HANDLED = ['name', 'disk_format', 'container_format', 'visibility',
           'os_hidden', 'protected', 'tags', 'min_disk', 'min_ram']


@pytest.mark.parametrize('key', COPIED)
def test_user_properties_are_copied(key):
    assert metadata.MetadataPolicy().decide(key)[0] == 'copy'


@pytest.mark.parametrize('key', SKIPPED)
def test_source_owned_and_reserved_keys_are_skipped_with_a_reason(key):
    action, reason = metadata.MetadataPolicy().decide(key)
    assert action == 'skip' and reason


@pytest.mark.parametrize('key', HANDLED)
def test_core_attributes_are_handled_by_their_own_step(key):
    assert metadata.MetadataPolicy().decide(key)[0] == 'handled'


MAPPED = ['kernel_id', 'ramdisk_id', 'cinder_encryption_key_id',
          'cinder_encryption_key_deletion_policy', 'block_device_mapping',
          'bdm_v2']


@pytest.mark.parametrize('key', MAPPED)
def test_references_into_the_source_region_are_never_copied_verbatim(key):
    policy = metadata.MetadataPolicy()
    action, reason = policy.decide(key)
    assert action == 'mapped' and reason
    to_set, _, skipped = policy.properties({key: 'source-value'}, {})
    assert key not in to_set and skipped[key] == reason


def test_mapped_references_are_written_with_their_target_values():
    to_set, _, skipped = metadata.MetadataPolicy().properties(
        {'kernel_id': 'k-src', 'ramdisk_id': 'r-src'}, {},
        mapped={'kernel_id': 'k-dst'})
    assert to_set['kernel_id'] == 'k-dst' and 'ramdisk_id' not in to_set
    assert 'ramdisk_id' in skipped


def test_user_cannot_override_a_reference():
    to_set, _, skipped = metadata.MetadataPolicy().properties(
        {}, {'properties': {'kernel_id': 'anything'}})
    assert 'kernel_id' not in to_set
    assert skipped['kernel_id'].startswith('override refused')


def test_signatures_are_copied_only_when_the_target_verifies_them():
    policy = metadata.MetadataPolicy(copy_signatures=True)
    assert policy.decide('img_signature')[0] == 'copy'


def test_operator_skip_patterns_apply(conf):
    conf.set_override('extra_skip_properties', ['secret_*'], group='metadata')
    policy = metadata.MetadataPolicy.from_conf(conf)
    assert policy.decide('secret_sauce')[0] == 'skip'
    assert policy.decide('sauce')[0] == 'copy'


SOURCE = {'id': 'a', 'owner': 'other', 'name': 'src', 'disk_format': 'qcow2',
          'container_format': 'bare', 'min_disk': 2, 'min_ram': 512,
          'tags': ['b', 'a'], 'protected': True, 'os_hidden': False,
          'visibility': 'public', 'hw_disk_bus': 'scsi', 'os_distro': 'debian',
          'os_glance_importing_to_stores': '', 'checksum': 'x', 'size': 3,
          'locations': [], 'stores': 'local'}


def test_properties_copies_user_keys_min_values_and_tags():
    to_set, tags, skipped = metadata.MetadataPolicy().properties(SOURCE, {})
    assert to_set == {'hw_disk_bus': 'scsi', 'os_distro': 'debian',
                      'min_disk': 2, 'min_ram': 512}
    assert tags == ['a', 'b']
    assert {'owner', 'os_glance_importing_to_stores', 'checksum', 'size',
            'locations', 'stores', 'id'} <= set(skipped)


def test_user_overrides_apply_on_top_but_cannot_forge_reserved_keys():
    to_set, tags, skipped = metadata.MetadataPolicy().properties(
        SOURCE, {'properties': {'os_distro': 'ubuntu', 'owner': 'me',
                                'os_glance_x': '1'}, 'tags': ['t']})
    assert to_set['os_distro'] == 'ubuntu'
    assert 'owner' not in to_set and 'os_glance_x' not in to_set
    assert skipped['owner'].startswith('override refused')
    assert tags == ['t']


def test_reservation_is_private_hidden_and_carries_provenance():
    fields = metadata.MetadataPolicy().reservation(
        SOURCE, {'name': 'copy'}, {'clone_id': 'c1'})
    assert fields == {'name': 'copy', 'disk_format': 'qcow2',
                      'container_format': 'bare', 'visibility': 'private',
                      'os_hidden': True, 'clone_id': 'c1'}


def test_activation_uses_the_users_visibility_else_the_default():
    policy = metadata.MetadataPolicy(default_visibility='private')
    assert policy.activation(SOURCE, {}) == {
        'visibility': 'private', 'os_hidden': False, 'protected': True}
    assert policy.activation(SOURCE, {'visibility': 'shared'})['visibility'] \
        == 'shared'
