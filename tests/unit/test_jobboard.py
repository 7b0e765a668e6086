"""The jobboard's ZooKeeper client: digest credential, ACL, quiet logs."""
import logging

from kazoo.protocol import serialization
from kazoo import security
import pytest

from conductor import jobboard


def test_client_without_password_has_no_auth_and_no_acl(conf):
    client = jobboard.make_client(conf)
    assert client.auth_data == set() and client.default_acl is None


def test_client_with_password_authenticates_and_acls_for_itself_only(conf):
    conf.set_override('password', 's3cret', group='jobboard')
    client = jobboard.make_client(conf)
    assert client.auth_data == {('digest', 'glance-clone:s3cret')}
    assert client.default_acl == [
        security.make_digest_acl('glance-clone', 's3cret', all=True)]
    assert all(a.id.scheme == 'digest' for a in client.default_acl)


def test_kazoo_debug_log_of_the_auth_request_hides_the_password(caplog):
    caplog.set_level(logging.DEBUG, logger='kazoo.client')
    jobboard.KAZOO_LOG.debug('Sending request(xid=%s): %s', -4,
                             serialization.Auth(0, 'digest', 'u:s3cret'))
    assert ('Auth(auth_type=0, scheme=\'digest\', auth=\'u:***\')'
            in caplog.text)
    assert 's3cret' not in caplog.text


def test_tls_client_verifies_the_server_and_presents_its_certificate(conf):
    conf.set_override('use_tls', True, group='jobboard')
    conf.set_override('tls_ca_file', '/etc/zk/ca.pem', group='jobboard')
    conf.set_override('tls_cert_file', '/etc/zk/c.pem', group='jobboard')
    conf.set_override('tls_key_file', '/etc/zk/k.pem', group='jobboard')
    client = jobboard.make_client(conf)
    assert isinstance(client, jobboard.TLSClient)
    assert (client.use_ssl, client.verify_certs, client.check_hostname) == \
        (True, True, True)
    assert (client.ca, client.certfile, client.keyfile) == \
        ('/etc/zk/ca.pem', '/etc/zk/c.pem', '/etc/zk/k.pem')


def test_tls_certificate_without_its_key_is_refused(conf):
    conf.set_override('use_tls', True, group='jobboard')
    conf.set_override('tls_cert_file', '/etc/zk/c.pem', group='jobboard')
    with pytest.raises(ValueError, match='set both or neither'):
        jobboard.make_client(conf)
