"""The streaming graph runtime: nodes in threads joined by bounded queues.

A :class:`Graph` is a linear chain ``SourceNode -> Node ... -> SinkNode``. End of stream
and errors travel down the chain, cancellation (Ctrl-C, SIGTERM, :meth:`Graph.cancel`)
stops every node, and the sink's ``close()`` is always called so that it can finalise its
output. :meth:`Graph.run` returns a :class:`GraphReport` of per-node :class:`NodeStats`.

>>> from streamden.graph import FunctionNode, Graph, SinkNode, SourceNode
>>> class Numbers(SourceNode):
...     def generate(self):
...         yield from range(5)
>>> report = Graph([Numbers(), FunctionNode(lambda x: x * x), SinkNode()]).run(handle_signals=False)
>>> report.outcome, report.nodes[-1].items_in
('complete', 5)
"""
from __future__ import annotations

from .metrics import GraphReport, NodeStats
from .node import FunctionNode, Node, SinkNode, SourceNode
from .runner import Graph

__all__ = ["Node", "SourceNode", "SinkNode", "FunctionNode", "Graph", "GraphReport", "NodeStats"]
