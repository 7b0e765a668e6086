"""Which of a source image's metadata a copy receives (the reasons:
doc/source/architecture.rst, section "The metadata policy"; the table:
doc/source/user/cloning.rst).

One rule set, configurable, applied once: a key is *copied*, *skipped* with
a reason, or *handled* by a dedicated step (formats at reservation,
visibility/hidden/protected at activation).  User overrides apply on top.
"""
import fnmatch

from oslo_config import cfg

#: Attributes that belong to the source image or its region, never copied.
SOURCE_OWNED = {
    'id': 'the copy gets its own id',
    'owner': "an owner id of the source project",
    'locations': 'locations belong to the source region',
    'direct_url': 'locations belong to the source region',
    'stores': "stores belong to the source region",
    'status': 'the copy has its own lifecycle',
    'checksum': 'the target computes it; Verify compares it',
    'os_hash_algo': 'the target computes it; Verify compares it',
    'os_hash_value': 'the target computes it; Verify compares it',
    'size': 'the target computes it; Verify compares it',
    'virtual_size': 'the target computes it',
    'created_at': 'the copy has its own timestamps',
    'updated_at': 'the copy has its own timestamps',
    'file': 'an API link of the source',
    'schema': 'an API link of the source',
    'self': 'an API link of the source',
}

#: Attributes set by a dedicated step of the clone graph.
HANDLED = {
    'name': 'set when the image is reserved',
    'disk_format': 'set when the image is reserved',
    'container_format': 'set when the image is reserved',
    'visibility': "the user's choice, set at activation",
    'os_hidden': 'set at activation',
    'protected': 'set at activation',
    'tags': 'copied as tags',
    'min_disk': 'copied as an attribute',
    'min_ram': 'copied as an attribute',
}

#: Properties that point into the source region: never copied verbatim.
#: The CheckMetadata step maps them (or refuses the image) before any data
#: moves; the values it maps are what the copy receives.
REFERENCES = {
    'kernel_id': 'an image id in the source region: mapped to its verified '
                 'copy in the target project, else the clone is refused',
    'ramdisk_id': 'an image id in the source region: mapped to its verified '
                  'copy in the target project, else the clone is refused',
    'cinder_encryption_key_id': "a key in the source region's key manager: "
                                'the clone is refused unless the operator '
                                'declares the key manager shared, then '
                                'copied',
    'cinder_encryption_key_deletion_policy': 'forced to do_not_delete on a '
                                             'copy of an encrypted image',
    'block_device_mapping': 'Cinder snapshots in the source region: the '
                            'clone is refused',
    'bdm_v2': 'marks a volume-backed snapshot: the clone is refused',
}

#: Provenance properties the copy carries (outside the reserved os_glance_*).
PROVENANCE_REGION = 'clone_source_region'
PROVENANCE_IMAGE = 'clone_source_image_id'
PROVENANCE_CLONE = 'clone_id'
#: The first source of a chain of clones (a clone of a clone carries its
#: parent's origin; a clone of an original, the original itself), so the
#: copies of an original are found even when an intermediate copy is gone.
PROVENANCE_ORIGIN_REGION = 'clone_origin_region'
PROVENANCE_ORIGIN_IMAGE = 'clone_origin_image_id'
PROVENANCE_KEYS = (PROVENANCE_REGION, PROVENANCE_IMAGE, PROVENANCE_CLONE,
                   PROVENANCE_ORIGIN_REGION, PROVENANCE_ORIGIN_IMAGE)


def provenance(clone_id, source_region, source_image):
    """The provenance properties of a copy of ``source_image``."""
    origin_region = source_image.get(PROVENANCE_ORIGIN_REGION)
    origin_image = source_image.get(PROVENANCE_ORIGIN_IMAGE)
    if not (origin_region and origin_image):
        # a copy made before origins were recorded: its parent's source is
        # the oldest ancestor known; an original is its own origin
        origin_region = source_image.get(PROVENANCE_REGION) or source_region
        origin_image = source_image.get(PROVENANCE_IMAGE) or source_image['id']
    return {PROVENANCE_REGION: source_region,
            PROVENANCE_IMAGE: source_image['id'],
            PROVENANCE_CLONE: clone_id,
            PROVENANCE_ORIGIN_REGION: origin_region,
            PROVENANCE_ORIGIN_IMAGE: origin_image}


metadata_opts = [
    cfg.ListOpt('skip_properties',
                default=['os_glance_*'],
                help='Glob patterns of image properties never copied. '
                     'os_glance_* is reserved by Glance.'),
    cfg.ListOpt('extra_skip_properties', default=[],
                help='Operator additions to skip_properties (globs).'),
    cfg.ListOpt('signature_properties',
                default=['img_signature', 'img_signature_*'],
                help='Image signature properties: copied only when '
                     'target_verifies_signatures is true.'),
    cfg.BoolOpt('target_verifies_signatures', default=False,
                help='Copy image signature properties (the target region '
                     'has the key manager and certificates to verify them).'),
    cfg.BoolOpt('shared_key_manager', default=False,
                help='Every region uses one key manager (Barbican), so an '
                     'encrypted image\'s key id means the same key in the '
                     'target: encrypted images are cloned with their key '
                     'id and the copy\'s key deletion policy forced to '
                     'do_not_delete (deleting the copy never deletes the '
                     'source\'s key).  False: encrypted images are refused.'),
    cfg.StrOpt('default_visibility', default='private',
               choices=['private', 'shared', 'community', 'public'],
               help='Visibility of a copy when the request names none.'),
]


def register_opts(conf):
    conf.register_opts(metadata_opts, group='metadata')


def list_opts():
    return [('metadata', metadata_opts)]


class MetadataPolicy:
    """Decides, key by key, what a copy inherits from its source."""

    def __init__(self, skip=('os_glance_*',), signature=('img_signature*',),
                 copy_signatures=False, default_visibility='private'):
        self._skip = tuple(skip)
        self._signature = tuple(signature)
        self._copy_signatures = copy_signatures
        self.default_visibility = default_visibility

    @classmethod
    def from_conf(cls, conf):
        m = conf.metadata
        return cls(skip=(list(m.skip_properties)
                         + list(m.extra_skip_properties)),
                   signature=m.signature_properties,
                   copy_signatures=m.target_verifies_signatures,
                   default_visibility=m.default_visibility)

    def decide(self, key):
        """(action, reason): action is 'copy', 'skip' or 'handled'."""
        if key in SOURCE_OWNED:
            return 'skip', SOURCE_OWNED[key]
        if key in HANDLED:
            return 'handled', HANDLED[key]
        if key in REFERENCES:
            return 'mapped', REFERENCES[key]
        if key in PROVENANCE_KEYS:
            return 'skip', 'provenance is written anew for each copy'
        if any(fnmatch.fnmatchcase(key, p) for p in self._skip):
            return 'skip', 'excluded by the metadata policy'
        if any(fnmatch.fnmatchcase(key, p) for p in self._signature):
            if self._copy_signatures:
                return 'copy', 'signature: the target verifies it'
            return 'skip', 'signature: the target cannot verify it'
        return 'copy', 'user property'

    # -- what each step of the graph sets -------------------------------
    def reservation(self, source, overrides, provenance):
        """Fields for creating the hidden, private placeholder image."""
        fields = {
            'name': overrides.get('name') or source.get('name') or '',
            'disk_format': source.get('disk_format'),
            'container_format': source.get('container_format'),
            'visibility': 'private',
            'os_hidden': True,
        }
        fields = {k: v for k, v in fields.items() if v is not None}
        fields.update(provenance)
        return fields

    def properties(self, source, overrides, mapped=None):
        """(attributes to set, tags, skipped {key: reason}).

        ``mapped``: the values CheckMetadata gave the source's references
        in the target region; a reference it did not map is not copied.
        """
        to_set, skipped = {}, {}
        mapped = mapped or {}
        for key, value in source.items():
            action, reason = self.decide(key)
            if action == 'copy':
                to_set[key] = value
            elif action == 'skip':
                skipped[key] = reason
            elif action == 'mapped' and key not in mapped:
                skipped[key] = reason
        to_set.update(mapped)
        for key in ('min_disk', 'min_ram'):
            if source.get(key) is not None:
                to_set[key] = source[key]
        for key, value in (overrides.get('properties') or {}).items():
            action, reason = self.decide(key)
            if action == 'copy':
                to_set[key] = value
                skipped.pop(key, None)
            else:
                skipped[key] = f'override refused: {reason}'
        tags = overrides.get('tags')
        if tags is None:
            tags = source.get('tags') or []
        return to_set, sorted(set(tags)), skipped

    def activation(self, source, overrides):
        """Attributes that make the proven copy visible as the user wants."""
        hidden = overrides.get('os_hidden')
        if hidden is None:
            hidden = bool(source.get('os_hidden', False))
        protected = overrides.get('protected')
        if protected is None:
            protected = bool(source.get('protected', False))
        return {
            'visibility': (overrides.get('visibility')
                           or self.default_visibility),
            'os_hidden': hidden,
            'protected': protected,
        }
