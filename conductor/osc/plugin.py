"""The ``openstack`` command's plugin interface for glance-clone.

``openstack`` finds this module through the ``openstack.cli.extension``
entry point ``image_clone`` and loads the commands of the entry point group
``openstack.image_clone.v2`` (``openstack image clone create|show|list|
cancel|copies``).
"""
import os

from osc_lib import utils

from conductor.osc import client as client_mod

DEFAULT_API_VERSION = '2'
API_NAME = 'image_clone'
API_VERSION_OPTION = 'os_image_clone_api_version'
API_VERSIONS = {'2': 'conductor.osc.client.CloneClient'}


def make_client(instance):
    """The :class:`~conductor.osc.client.CloneClient` of the command's
    session, region and interface (``instance``: osc-lib's
    ClientManager).
    """
    config = instance.get_configuration()
    override = config.get('clone_endpoint') or \
        config.get('clone_endpoint_override')
    interface = instance.interface or 'public'

    def catalog(service_type, region):
        if instance.auth_ref is None:
            return None
        try:
            return instance.auth_ref.service_catalog.url_for(
                service_type=service_type, interface=interface,
                region_name=region)
        except Exception:
            return None

    return client_mod.CloneClient(instance.session, catalog,
                                  default_region=instance.region_name,
                                  override=override, interface=interface)


def build_option_parser(parser):
    """The plugin's global options."""
    parser.add_argument(
        '--os-image-clone-api-version',
        metavar='<image-clone-api-version>',
        default=utils.env('OS_IMAGE_CLONE_API_VERSION',
                          default=DEFAULT_API_VERSION),
        choices=sorted(API_VERSIONS),
        help=f'glance-clone API version, default={DEFAULT_API_VERSION} '
             f'(Env: OS_IMAGE_CLONE_API_VERSION)')
    parser.add_argument(
        '--os-clone-endpoint',
        metavar='<url>',
        default=os.environ.get('OS_CLONE_ENDPOINT'),
        help='URL of glance-clone\'s tasks API, instead of the target '
             'region\'s clone (or image) service in the catalog '
             '(Env: OS_CLONE_ENDPOINT)')
    return parser
