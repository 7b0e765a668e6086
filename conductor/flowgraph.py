"""A clone's graph drawn with Graphviz, each step coloured by its state.

The DOT text is written here (steps, nested flows as clusters, the order
between them); Graphviz's ``dot`` program (Debian package ``graphviz``,
installed by tools/bootstrap.sh) draws it as SVG or PNG.
"""
import shutil
import subprocess

import taskflow.engines
from taskflow import flow as tf_flow
from taskflow.patterns import graph_flow
from taskflow.patterns import linear_flow
from taskflow import retry as tf_retry

#: Fill colour of a step in each TaskFlow state (the legend in the docs).
COLOURS = {
    'PENDING': '#d9d9d9',         # grey: not run (yet)
    'RUNNING': '#6fa8dc',         # blue
    'SUCCESS': '#93c47d',         # green
    'FAILURE': '#e06666',         # red: the step failed
    'REVERTING': '#f6b26b',       # orange
    'REVERTED': '#ffd966',        # yellow: undone
    'REVERT_FAILURE': '#990000',  # dark red: undoing failed
    'RETRYING': '#b4a7d6',        # purple
    'IGNORE': '#ffffff',          # white: skipped by the graph's decision
}
UNKNOWN_COLOUR = '#ffffff'
FORMATS = ('svg', 'png', 'dot')


class GraphvizMissing(Exception):
    """``dot`` is not installed."""


def _quote(text):
    return '"' + str(text).replace('\\', '\\\\').replace('"', '\\"') + '"'


def _ends(node, first):
    """The atoms a node starts with (``first``) or ends with."""
    if not isinstance(node, tf_flow.Flow):
        return [node.name]
    nodes = [n for n, _ in node.iter_nodes()]
    if not nodes:
        return []
    if isinstance(node, linear_flow.Flow):
        return _ends(nodes[0] if first else nodes[-1], first)
    links = list(node.iter_links())
    inner = {v for _, v, _ in links} if first else {u for u, _, _ in links}
    out = []
    for n in nodes:
        if n not in inner:
            out += _ends(n, first)
    return out


#: Border of a step whose execution failed (its fill tells its state now,
#: e.g. REVERTED: the border tells where the clone failed).
FAILED_BORDER = '#cc0000'


def _emit(flow, states, lines, edges, depth=1, failed=()):
    pad = '  ' * depth
    nodes = [n for n, _ in flow.iter_nodes()]
    members = list(nodes)
    if flow.retry is not None:
        members.insert(0, flow.retry)
        for start in _ends(flow, True):
            edges.append((flow.retry.name, start, 'dashed'))
    for n in members:
        if isinstance(n, tf_flow.Flow):
            lines.append(f'{pad}subgraph {_quote("cluster_" + n.name)} {{')
            lines.append(f'{pad}  label={_quote(n.name)}; style=rounded; '
                         f'color="#999999"; fontsize=10;')
            _emit(n, states, lines, edges, depth + 1, failed)
            lines.append(f'{pad}}}')
            continue
        state = states.get(n.name, 'PENDING')
        shape = 'diamond' if isinstance(n, tf_retry.Retry) else 'box'
        label = n.name + '\n' + state
        border = ''
        if n.name in failed:
            label += '\n(failed here)'
            border = f', color={_quote(FAILED_BORDER)}, penwidth=3'
        lines.append(
            f'{pad}{_quote(n.name)} [label={_quote(label)}'
            f', shape={shape}, style="filled,rounded", '
            f'fillcolor={_quote(COLOURS.get(state, UNKNOWN_COLOUR))}'
            f'{border}];')
    if isinstance(flow, linear_flow.Flow):
        pairs = list(zip(nodes, nodes[1:]))
    elif isinstance(flow, graph_flow.Flow):
        pairs = [(u, v) for u, v, _ in flow.iter_links()]
    else:                   # unordered: no order between the nodes
        pairs = []
    for u, v in pairs:
        for a in _ends(u, False):
            for b in _ends(v, True):
                edges.append((a, b, 'solid'))


def dot_text(flow, states, title='', failed=()):
    """DOT for ``flow``, each atom filled with the colour of its state in
    ``states`` ({atom name: state}; PENDING when absent); the atoms named in
    ``failed`` (their execution failed) get a thick red border.
    """
    lines = ['digraph clone {', '  rankdir=TB;',
             '  node [fontname="Helvetica", fontsize=11];',
             f'  label={_quote(title)}; labelloc=t; fontname="Helvetica";']
    edges = []
    _emit(flow, states, lines, edges, failed=set(failed))
    for a, b, style in edges:
        lines.append(f'  {_quote(a)} -> {_quote(b)} [style={style}];')
    lines.append('}')
    return '\n'.join(lines) + '\n'


def flow_dot(fd):
    """DOT of a stored clone's graph in its current states."""
    flow = taskflow.engines.flow_from_detail(fd)
    states = {ad.name: ad.state for ad in fd}
    failed = {ad.name for ad in fd if ad.failure is not None}
    return dot_text(flow, states, title=f'clone {fd.uuid}: {fd.state}',
                    failed=failed)


def render(dot, path, fmt, timeout=60):
    """Write ``dot`` to ``path`` as ``fmt`` (svg, png or dot)."""
    if fmt == 'dot':
        with open(path, 'w') as f:
            f.write(dot)
        return
    exe = shutil.which('dot')
    if exe is None:
        raise GraphvizMissing(
            "Graphviz's dot program is not installed (Debian package "
            "graphviz; tools/bootstrap.sh installs it); -o FILE.dot writes "
            "the graph as text instead")
    r = subprocess.run([exe, f'-T{fmt}', '-o', str(path)], input=dot,
                       text=True, capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f'dot failed: {r.stderr.strip()[:300]}')
