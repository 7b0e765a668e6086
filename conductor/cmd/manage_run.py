"""clone-manage clone and copies: a clone run in this process (or posted
for the conductors) as the user of the OS_* environment, and an image's
copies in every region.

    clone-manage clone --source-region R1 --image ID --target-region R2
    clone-manage clone --resume CLONE_ID
    clone-manage copies --region R1 --image ID
"""
import argparse
import json
import os
import socket
import sys
import time

from clone_flows import constants as c
from clone_flows import exceptions
from conductor.cmd import manage
from conductor import opts
from conductor import outcome
from conductor import persistence
from conductor import runner


def user_session_from_env(conf):
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
            if ad.name == c.COPY_DATA and ad.state == 'RUNNING':
                details = ((ad.meta or {}).get('progress_details') or {}).get(
                    'details')
                if details:
                    bar(details)
        if runner.is_finished(fd):
            return outcome.from_flow_detail(fd)
        time.sleep(poll)


def cmd_clone(conf, args):
    user_session = None if args.resume else user_session_from_env(conf)
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
    from conductor.worker import history
    with history.HistoryRecorder(
            engine, f'clone-manage@{socket.gethostname()}:{os.getpid()}'):
        result = runner.run(engine, backend, clone_id)
    return _report(args, clone_id, result, bar)


def _new_store(conf, user_session, args):
    """The new clone's store (its trust made), or None after printing why
    not (e.g. the user lacks a role the clone needs).
    """
    try:
        return runner.new_store(conf, user_session, _request(args))
    except exceptions.CloneError as e:
        print(f'clone-manage: {_for_the_cli(e)}', file=sys.stderr)
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


def _for_the_cli(error):
    """A domain error's sentence, with what it means at this command line."""
    if isinstance(error, exceptions.CredentialsRefused):
        return f'{error} (the OS_* variables)'
    if isinstance(error, exceptions.ServiceNotConfigured):
        return f'{error} (given with --config-file)'
    return str(error)


def _key_value(text):
    if '=' not in text:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE")
    return tuple(text.split('=', 1))


def cmd_copies(conf, args):
    from clone_flows import copies
    try:
        listing = copies.list_copies(user_session_from_env(conf), conf,
                                     args.region, args.image)
    except exceptions.CloneError as e:
        print(f'clone-manage: {_for_the_cli(e)}', file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(listing, indent=2, sort_keys=True))
        return 0
    image = listing['image']
    if not image['found']:
        print(f"image {args.image} is not visible in {args.region} "
              f"(deleted?); its copies:", file=sys.stderr)
    print(f"{'REGION':12}  {'IMAGE':36}  {'STATUS':8}  {'VERIFIED':8}  "
          f"SOURCE")
    for e in listing['copies']:
        print(f"{e['region']:12}  {e['image_id']:36}  {e['status']:8}  "
              f"{str(e['verified']):8}  {e['source']['region']}/"
              f"{e['source']['image_id']}")
    return 0


class CloneRun(manage.Command):
    """Clone an image into another region.

    Runs the persisted clone graph in this process (as the user of the
    OS_* environment), or posts it for the conductors (--conductor).
    """

    opt_modules = opts.CLONE

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        c = parser
        c.add_argument('--source-region', help='region the image is in')
        c.add_argument('--image', help='id of the image to clone')
        c.add_argument('--target-region',
                       default=os.environ.get('OS_REGION_NAME'),
                       help='region to clone into (default: $OS_REGION_NAME)')
        c.add_argument('--name',
                       help='name of the copy (default: the source\'s)')
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
                       help='also clone the kernel and ramdisk images the '
                            'image refers to (kernel_id, ramdisk_id) when '
                            'your project in the target region has no '
                            'verified copy of them yet, in the same clone')
        c.add_argument('--if-exists', choices=['copy', 'reuse', 'fail'],
                       default='copy',
                       help='when your project in the target region already '
                            'holds a verified copy of the image: copy anyway '
                            '(default), reuse it, or fail naming it')
        c.add_argument('--resume', metavar='CLONE_ID',
                       help='continue a clone whose process was killed')
        c.add_argument('--conductor', action='store_true',
                       help='post the clone to the jobboard for the '
                            'conductors and follow it, instead of running it '
                            'here')
        c.add_argument('--no-wait', action='store_true',
                       help='with --conductor: print the clone id and return')
        c.add_argument('--no-progress', action='store_true',
                       help='do not draw the progress bar')
        c.add_argument('--json', action='store_true',
                       help='print the outcome as JSON')
        return parser

    def take_action(self, parsed_args):
        return cmd_clone(self.conf(), parsed_args)


class Copies(manage.Command):
    """List an image's copies in every region.

    As the user of the OS_* environment sees them.
    """

    opt_modules = opts.CLONE

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--region', required=True,
                            help='region the image is in')
        parser.add_argument('--image', required=True, help='id of the image')
        parser.add_argument('--json', action='store_true',
                            help='print the listing as JSON')
        return parser

    def take_action(self, parsed_args):
        return cmd_copies(self.conf(), parsed_args)
