from oslo_config import cfg

from conductor import confcache


def test_a_value_is_made_once_per_configuration_object():
    cache, made = confcache.PerConf(), []
    conf = cfg.ConfigOpts()
    first = cache.get(conf, lambda: made.append(1) or object())
    assert cache.get(conf, lambda: made.append(2) or object()) is first
    assert made == [1]


class Conf:
    """Stands for a ConfigOpts: CPython gives a new one of these the
    address of one just freed, so ids are reused as in a long-lived API.
    """


def test_a_new_object_at_a_reused_id_gets_its_own_value():
    cache = confcache.PerConf()
    old = Conf()
    old_id = id(old)
    cache.get(old, lambda: 'made for the old one')
    del old
    new = Conf()
    assert id(new) == old_id            # the situation this guards against
    assert cache.get(new, lambda: 'made for the new one') == \
        'made for the new one'
