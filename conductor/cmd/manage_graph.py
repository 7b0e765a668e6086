"""clone-manage flow graph: a clone's graph drawn, each step coloured by
its state.

    clone-manage flow graph ID -o FILE.svg|png|dot
"""
import os

from conductor.cmd import manage
from conductor.cmd import manage_flows
from conductor import flowgraph
from conductor import flowtables


class FlowGraph(manage.Command):
    """Draw a clone's graph, each step coloured by its state.

    Colours: (grey pending,
    blue running, green success, red failure, yellow reverted, dark red
    revert failure, orange reverting, purple retrying), as SVG, PNG (with
    Graphviz's dot) or DOT text, by the file's extension.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('id', metavar='ID', help='clone id')
        parser.add_argument('-o', '--output', required=True, metavar='FILE',
                            help='FILE.svg, FILE.png or FILE.dot')
        return parser

    def take_action(self, a):
        fmt = os.path.splitext(a.output)[1].lstrip('.').lower()
        if fmt not in flowgraph.FORMATS:
            raise manage.UsageError(f'-o FILE must end in .svg, .png or '
                                    f'.dot, not {a.output!r}')
        fd = flowtables.load(manage_flows.reader(self.app), a.id)
        try:
            flowgraph.render(flowgraph.flow_dot(fd), a.output, fmt)
        except flowgraph.GraphvizMissing as e:
            raise manage.CommandError(str(e))
        self.app.stdout.write(f'{a.output}: graph of clone {a.id} '
                              f'({fd.state})\n')
        return 0
