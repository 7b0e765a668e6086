"""Idempotent Keystone set-up for the local cloud (runs inside venv-cloud).

Reads a JSON spec on stdin, makes Keystone match it, prints a JSON result
({"users": {name: {"user_id": ..., "project_id": ...}}}) on stdout.
Everything happens in this one process (each `openstack` CLI call would cost
~2.5 s of start-up).

Spec:
{
  "auth_url": "http://127.0.0.1:15000/v3",
  "admin": {"password": "..."},
  "regions": ["RegionOne", "RegionTwo"],
  "services": [{"name": "keystone", "type": "identity",
                "endpoints": {"RegionOne": {"public": url, "internal": url,
                                            "admin": url}, ...}}, ...],
  "projects": ["admin", "demo", ...],
  "users": {"demo": {"password": "...", "project": "demo",
                     "roles": ["member"]}, ...}
}
"""
import json
import sys

from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session
from keystoneclient.v3 import client as ks_client

DOMAIN = 'default'


def _one(items, what):
    items = list(items)
    if len(items) > 1:
        raise SystemExit('keystone_setup: more than one %s: %r'
                         % (what, items))
    return items[0] if items else None


def main():
    spec = json.load(sys.stdin)
    auth = v3.Password(auth_url=spec['auth_url'], username='admin',
                       password=spec['admin']['password'],
                       project_name='admin', user_domain_id=DOMAIN,
                       project_domain_id=DOMAIN)
    sess = ks_session.Session(auth=auth, timeout=60)
    ks = ks_client.Client(session=sess, interface='public',
                          region_name=spec['regions'][0])

    # Regions
    have = {r.id for r in ks.regions.list()}
    for region in spec['regions']:
        if region not in have:
            ks.regions.create(id=region)

    # Services and endpoints
    for svc in spec['services']:
        service = _one((s for s in ks.services.list(type=svc['type'])
                        if s.name == svc['name']), 'service %s' % svc['name'])
        if service is None:
            service = ks.services.create(name=svc['name'], type=svc['type'],
                                         enabled=True)
        existing = ks.endpoints.list(service=service)
        for region, ifaces in svc['endpoints'].items():
            for iface, url in ifaces.items():
                matches = [e for e in existing
                           if e.region_id == region and e.interface == iface]
                if matches:
                    first, rest = matches[0], matches[1:]
                    if first.url != url or not first.enabled:
                        ks.endpoints.update(first, url=url, enabled=True)
                    for extra in rest:
                        ks.endpoints.delete(extra)
                else:
                    ks.endpoints.create(service=service, url=url,
                                        interface=iface, region=region,
                                        enabled=True)

    # Roles (bootstrap creates admin/member/reader/manager/service; make sure)
    roles = {r.name: r for r in ks.roles.list()}
    needed = {role for u in spec['users'].values() for role in u['roles']}
    for name in sorted(needed - set(roles)):
        roles[name] = ks.roles.create(name=name)

    # Projects
    projects = {p.name: p for p in ks.projects.list(domain=DOMAIN)}
    for name in spec['projects']:
        if name not in projects:
            projects[name] = ks.projects.create(name=name, domain=DOMAIN,
                                                enabled=True)

    # Users, passwords, role assignments
    users = {u.name: u for u in ks.users.list(domain=DOMAIN)}
    result = {}
    for name, u in spec['users'].items():
        project = projects[u['project']]
        if name not in users:
            users[name] = ks.users.create(name=name, domain=DOMAIN,
                                          password=u['password'],
                                          default_project=project,
                                          enabled=True)
        elif name != 'admin':
            # keep the password in step with the state dir's secrets
            ks.users.update(users[name], password=u['password'],
                            default_project=project, enabled=True)
        user = users[name]
        have_roles = {a.role['id'] for a in
                      ks.role_assignments.list(user=user, project=project)}
        for role in u['roles']:
            if roles[role].id not in have_roles:
                ks.roles.grant(roles[role], user=user, project=project)
        # Roles granted earlier but not in the spec are removed, so e.g.
        # demo_reader stays reader-only.
        wanted = {roles[r].id for r in u['roles']}
        for role_id in have_roles - wanted:
            ks.roles.revoke(role_id, user=user, project=project)
        result[name] = {'user_id': user.id, 'project_id': project.id}

    json.dump({'users': result}, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
