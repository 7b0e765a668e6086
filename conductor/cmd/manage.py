"""clone-manage: run and inspect clones from a shell.

    clone-manage clone --source-region R1 --image ID --target-region R2
    clone-manage clone --resume CLONE_ID
    clone-manage clone --source-region R1 --image ID --dry-run
    clone-manage copies --region R1 --image ID
"""
import argparse
import json
import os
import sys
import time

from clone_flows import exceptions
from conductor import opts
from conductor import outcome
from conductor import persistence
from conductor import runner


def _user_session_from_env(conf):
    """A keystoneauth session for the user of the usual OS_* variables."""
    from keystoneauth1.identity import v3
    from clone_flows import auth as clone_auth
    env = os.environ
    if not env.get('OS_AUTH_URL'):
        raise SystemExit('clone-manage: OS_AUTH_URL is not set; source an '
                         'openrc file for the user who clones')
    common = dict(
        auth_url=env['OS_AUTH_URL'],
        project_id=env.get('OS_PROJECT_ID'),
        project_name=env.get('OS_PROJECT_NAME') or env.get('OS_TENANT_NAME'),
        project_domain_name=env.get('OS_PROJECT_DOMAIN_NAME') or (
            None if env.get('OS_PROJECT_DOMAIN_ID') else 'Default'),
        project_domain_id=env.get('OS_PROJECT_DOMAIN_ID'))
    if env.get('OS_TOKEN'):
        auth = v3.Token(token=env['OS_TOKEN'], **common)
    else:
        auth = v3.Password(
            username=env.get('OS_USERNAME'), user_id=env.get('OS_USER_ID'),
            password=env.get('OS_PASSWORD'),
            user_domain_name=env.get('OS_USER_DOMAIN_NAME') or (
                None if env.get('OS_USER_DOMAIN_ID') else 'Default'),
            user_domain_id=env.get('OS_USER_DOMAIN_ID'), **common)
    return clone_auth.user_session(conf, auth,
                                   verify=env.get('OS_CACERT', True))


class ProgressBar:
    """One line on stderr: percent, bytes, rate, strategy."""

    def __init__(self, stream=sys.stderr, enabled=True):
        self._stream = stream
        self._quiet = not enabled
        self._enabled = enabled and stream.isatty()
        self._last_line = 0.0

    def __call__(self, details):
        if self._quiet:
            return
        done = details.get('bytes_done', 0)
        total = details.get('bytes_total', 0) or 0
        pct = details.get('percent', 0.0)
        rate = details.get('rate_bytes_per_s', 0) / 2**20
        width = 30
        filled = int(width * pct / 100)
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {pct:5.1f}%  "
                f"{done / 2**20:,.1f}/{total / 2**20:,.1f} MiB  "
                f"{rate:,.1f} MiB/s  ({details.get('strategy')})")
        if self._enabled:
            self._stream.write('\r' + line)
        elif time.monotonic() - self._last_line >= 5 or pct >= 100:
            self._last_line = time.monotonic()
            self._stream.write(line + '\n')
        self._stream.flush()

    def end(self):
        if self._enabled:
            self._stream.write('\n')


def _follow(backend, clone_id, bar, poll=0.5):
    """Wait for a clone run by a conductor, relaying its progress."""
    while True:
        _, fd = runner.load_flow(backend, clone_id)
        for ad in fd:
            if ad.name == 'clone-copy-data' and ad.state == 'RUNNING':
                details = ((ad.meta or {}).get('progress_details') or {}).get(
                    'details')
                if details:
                    bar(details)
        if runner.is_finished(fd):
            return outcome.from_flow_detail(fd)
        time.sleep(poll)


def cmd_clone(conf, args):
    user_session = None if args.resume else _user_session_from_env(conf)
    backend = persistence.get_backend(conf)
    bar = ProgressBar(enabled=not args.no_progress)
    if args.conductor and not args.resume:
        from conductor import jobboard
        jobboard.register_opts(conf)
        store = _new_store(conf, user_session, args)
        if store is None:
            return 1
        job = jobboard.Poster(conf)
        try:
            job.post(store, project_id=user_session.get_project_id())
        finally:
            job.close()
        clone_id = store['clone_id']
        print(f'clone {clone_id} posted for the conductors', file=sys.stderr)
        if args.no_wait:
            print(clone_id)
            return 0
        return _report(args, clone_id, _follow(backend, clone_id, bar), bar)
    if args.resume:
        try:
            book, fd = runner.load_flow(backend, args.resume)
        except LookupError as e:
            print(f'clone-manage: {e}', file=sys.stderr)
            return 2
        if runner.is_finished(fd):
            print(f'clone-manage: clone {args.resume} already ended '
                  f'({fd.state}); nothing to resume', file=sys.stderr)
            return 2
        engine = runner.prepare_engine(conf, backend, book, fd,
                                       on_progress=bar)
        clone_id = args.resume
    else:
        missing = [n for n in ('source_region', 'image', 'target_region')
                   if not getattr(args, n)]
        if missing:
            print('clone-manage: clone needs ' + ', '.join(
                '--' + m.replace('_', '-') for m in missing), file=sys.stderr)
            return 2
        store = _new_store(conf, user_session, args)
        if store is None:
            return 1
        book, fd, flow = runner.save_new_flow(conf, backend, store)
        clone_id = store['clone_id']
        print(f'clone {clone_id}: {args.source_region}/{args.image} -> '
              f'{args.target_region}', file=sys.stderr)
        engine = runner.prepare_engine(conf, backend, book, fd, flow=flow,
                                       on_progress=bar)
    return _report(args, clone_id, runner.run(engine, backend, clone_id), bar)


def _new_store(conf, user_session, args):
    """The new clone's store (its trust made), or None after printing why
    not (e.g. the user lacks a role the clone needs)."""
    try:
        return runner.new_store(conf, user_session, _request(args))
    except exceptions.CloneError as e:
        print(f'clone-manage: {e}', file=sys.stderr)
        return None


def _request(args):
    return {
        'source_region': args.source_region,
        'source_image_id': args.image,
        'target_region': args.target_region,
        'name': args.name, 'visibility': args.visibility,
        'strategy': args.strategy,
        'properties': dict(args.property) if args.property else None,
        'tags': args.tag,
        'dry_run': args.dry_run,
        'if_exists': args.if_exists,
        'include_dependencies': args.include_dependencies,
    }


def _report(args, clone_id, result, bar):
    bar.end()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    if result.succeeded:
        r = result.result
        if not args.json:
            print(_summary(r))
        return 0
    print(f'clone {clone_id} failed: {result.message}', file=sys.stderr)
    return 1


def _summary(r):
    """A successful outcome's result, for a person."""
    if r.get('dry_run'):
        lines = [f"dry run: a clone into {r['region']} would move "
                 f"{r['bytes_to_move']} bytes with strategy {r['strategy']} "
                 f"({r['strategy_reason']})"]
        if r.get('would_reuse'):
            lines.append(f"  it would reuse image {r['existing_copy']}")
        lines += [f"  passed: {ch['check']}: {ch['detail']}"
                  for ch in r['checks']]
        lines += [f'  not proven: {text}' for text in r['not_proven']]
        lines += [f"  {key}: {d['action']}" for key, d in
                  sorted(r['properties'].items())]
        return '\n'.join(lines)
    verb = 'reused in' if r.get('reused') else 'cloned into'
    return (f"{verb} {r['region']}: image {r['image_id']}\n"
            f"  {r['os_hash_algo']} {r['os_hash_value']}\n"
            f"  md5 {r['checksum']}  size {r['size']}")


def _key_value(text):
    if '=' not in text:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE")
    return tuple(text.split('=', 1))


def build_parser():
    p = argparse.ArgumentParser(
        prog='clone-manage',
        description='Run and inspect glance-clone clones (cross-region '
                    'image copies).')
    p.add_argument('--config-file', action='append', default=[],
                   help='glance-clone configuration file (repeatable)')
    sub = p.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    c = sub.add_parser(
        'clone', help='clone an image in this process, as the user of the '
                      'OS_* environment, with a progress bar',
        description='Clone an image from one region into another, running '
                    'the persisted clone graph in this process.')
    c.add_argument('--source-region', help='region the image is in')
    c.add_argument('--image', help='id of the image to clone')
    c.add_argument('--target-region',
                   default=os.environ.get('OS_REGION_NAME'),
                   help='region to clone into (default: $OS_REGION_NAME)')
    c.add_argument('--name', help='name of the copy (default: the source\'s)')
    c.add_argument('--visibility',
                   choices=['private', 'shared', 'community', 'public'])
    c.add_argument('--property', action='append', type=_key_value,
                   metavar='KEY=VALUE', help='set a property on the copy')
    c.add_argument('--tag', action='append', help='tags of the copy '
                   '(replace the source\'s)')
    c.add_argument('--strategy', default='auto',
                   help='store strategy: auto (default), http, ...')
    c.add_argument('--dry-run', action='store_true',
                   help='run the checks of the clone and print its plan '
                        '(strategy, bytes, property diff); change nothing')
    c.add_argument('--include-dependencies', action='store_true',
                   help='also clone the kernel and ramdisk images the image '
                        'refers to (kernel_id, ramdisk_id) when your project '
                        'in the target region has no verified copy of them '
                        'yet, in the same clone')
    c.add_argument('--if-exists', choices=['copy', 'reuse', 'fail'],
                   default='copy',
                   help='when your project in the target region already '
                        'holds a verified copy of the image: copy anyway '
                        '(default), reuse it, or fail naming it')
    c.add_argument('--resume', metavar='CLONE_ID',
                   help='continue a clone whose process was killed')
    c.add_argument('--conductor', action='store_true',
                   help='post the clone to the jobboard for the conductors '
                        'and follow it, instead of running it here')
    c.add_argument('--no-wait', action='store_true',
                   help='with --conductor: print the clone id and return')
    c.add_argument('--no-progress', action='store_true')
    c.add_argument('--json', action='store_true',
                   help='print the outcome as JSON')
    c.set_defaults(func=cmd_clone, opt_modules=opts.CLONE)
    cp = sub.add_parser(
        'copies', help="list an image's copies in every region (as the "
                       "user of the OS_* environment sees them)")
    cp.add_argument('--region', required=True, help='region the image is in')
    cp.add_argument('--image', required=True, help='id of the image')
    cp.add_argument('--json', action='store_true',
                    help='print the listing as JSON')
    cp.set_defaults(func=cmd_copies, opt_modules=opts.CLONE)
    s = sub.add_parser('sweep', help='remove what clones whose cleanup '
                       'failed left behind (images in the target, trusts)')
    s.set_defaults(func=cmd_sweep)
    j = sub.add_parser('jobs', help='list the clones started on the '
                       'jobboard, and how many each project has pending and '
                       'running')
    j.set_defaults(func=cmd_jobs)
    from conductor.cmd import manage_db
    manage_db.add_parsers(sub)
    return p


def cmd_copies(conf, args):
    from clone_flows import copies
    try:
        listing = copies.list_copies(_user_session_from_env(conf), conf,
                                     args.region, args.image)
    except exceptions.CloneError as e:
        print(f'clone-manage: {e}', file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(listing, indent=2, sort_keys=True))
        return 0
    image = listing['image']
    if not image['found']:
        print(f"image {args.image} is not visible in {args.region} (deleted?); "
              f"its copies:", file=sys.stderr)
    print(f"{'REGION':12}  {'IMAGE':36}  {'STATUS':8}  {'VERIFIED':8}  "
          f"SOURCE")
    for e in listing['copies']:
        print(f"{e['region']:12}  {e['image_id']:36}  {e['status']:8}  "
              f"{str(e['verified']):8}  {e['source']['region']}/"
              f"{e['source']['image_id']}")
    return 0


def cmd_sweep(conf, args):
    from conductor import sweep
    swept, left = sweep.sweep(conf, persistence.get_backend(conf))
    print(f'{swept} clone(s) cleaned, {left} left for a later sweep')
    return 0 if left == 0 else 1


def cmd_jobs(conf, args):
    from conductor import jobboard
    from conductor import pending
    backend = persistence.get_backend(conf)
    client = jobboard.make_client(conf)
    client.start(timeout=conf.jobboard.session_timeout)
    try:
        board = jobboard.make_board(conf, client, backend)
        rows = []
        for job in board.iterjobs(ensure_fresh=True):
            details = job.details or {}
            clone_id = details.get('flow_uuid', '-')
            try:
                store = runner.load_flow(backend, clone_id)[1].meta.get(
                    'store') or {}
            except LookupError:
                store = details.get('store') or {}
            rows.append((clone_id, job.state,
                         board.find_owner(job) or '-',
                         f"{store.get('source_region')}/"
                         f"{store.get('source_image_id')} -> "
                         f"{store.get('target_region')}"))
        waiting = pending.counts(client, conf.jobboard.path)
        board.close()
    finally:
        client.stop()
        client.close()
    print(f"{'CLONE':36}  {'STATE':9}  {'OWNER':24}  WHAT")
    for r in rows:
        print(f'{r[0]:36}  {r[1]:9}  {r[2]:24}  {r[3]}')
    print(f"\n{'PROJECT':36}  {'PENDING':>7}  {'RUNNING':>7}")
    for project, (n_pending, n_running) in sorted(waiting.items()):
        if n_pending or n_running:
            print(f'{project:36}  {n_pending:7}  {n_running:7}')
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    conf_args = []
    for f in args.config_file:
        conf_args += ['--config-file', f]
    conf = opts.new_conf(conf_args,
                         modules=getattr(args, 'opt_modules', opts.ALL))
    return args.func(conf, args)


if __name__ == '__main__':
    sys.exit(main())
