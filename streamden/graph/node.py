"""Nodes of the streaming graph: a source, any number of transforms, and a sink.

A node is a plain object with four hooks that the runner (:mod:`streamden.graph.runner`)
calls from the node's own thread:

``open()``
    once, before the first item (load a model, open a file).
``process(item)``
    once per input item; returns (or yields) zero or more output items.
``flush()``
    once at a clean end of stream; returns (or yields) whatever the node held back
    (the last frames of a sliding window, the encoder's delayed packets).
    Not called when the run is cancelled or fails.
``close()``
    always exactly once, last: after ``flush()``, or after an error or a cancellation.
    It is called even when ``open()`` raised, so it must cope with a half-opened node.
    ``self.outcome`` tells it why the node stopped: ``"complete"``, ``"cancelled"`` or
    ``"error"``.

A :class:`SourceNode` has :meth:`SourceNode.generate` instead of ``process``; a
:class:`SinkNode` consumes items and emits nothing. :class:`FunctionNode` wraps a plain
one-in one-out function.

Example, a chain that doubles numbers (see :class:`streamden.graph.Graph`):

>>> from streamden.graph import Graph
>>> class Numbers(SourceNode):
...     def generate(self):
...         yield from range(3)
>>> class Collect(SinkNode):
...     def __init__(self):
...         super().__init__()
...         self.items = []
...     def process(self, item):
...         self.items.append(item)
>>> sink = Collect()
>>> _ = Graph([Numbers(), FunctionNode(lambda x: 2 * x), sink]).run(handle_signals=False)
>>> sink.items, sink.outcome
([0, 2, 4], 'complete')
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Iterator

__all__ = ["Node", "SourceNode", "SinkNode", "FunctionNode"]

#: Values of :attr:`Node.outcome` once a run has ended.
OUTCOMES = ("complete", "cancelled", "error")


class Node:
    """Base class of every node; subclasses override the hooks they need.

    The default :meth:`process` passes each item through unchanged and the default
    :meth:`flush`, :meth:`open` and :meth:`close` do nothing. ``name`` (shown in stats
    tables and error messages) defaults to the class name.

    A node belongs to one run of one graph: hooks are called from one thread, never
    concurrently, so a node needs no locking of its own state.

    >>> class AddOne(Node):
    ...     def process(self, item):
    ...         return [item + 1]
    >>> AddOne().name, AddOne(name="plus").name, list(AddOne().process(1))
    ('AddOne', 'plus', [2])
    """

    #: Why the node stopped, set by the runner just before :meth:`close`:
    #: ``"complete"``, ``"cancelled"`` or ``"error"`` (``None`` before that).
    outcome: str | None = None

    def __init__(self, name: str | None = None) -> None:
        self._name = name

    # The name is a property so that a subclass that forgets super().__init__() still
    # gets its class name instead of an AttributeError deep inside the runner.
    @property
    def name(self) -> str:
        """The node's display name; the class name unless one was given.

        >>> Node().name
        'Node'
        """
        return self.__dict__.get("_name") or type(self).__name__

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    def open(self) -> None:
        """Acquire resources; called in the node's thread before the first item.

        >>> Node().open()
        """

    def process(self, item: Any) -> Iterable[Any] | None:
        """Turn one input item into 0..n output items (a list, a tuple, a generator or None).

        >>> list(Node().process("frame"))
        ['frame']
        """
        return (item,)

    def flush(self) -> Iterable[Any] | None:
        """Emit what the node held back; called once at a clean end of stream only.

        >>> list(Node().flush())
        []
        """
        return ()

    def close(self) -> None:
        """Release resources; always called exactly once, last, in the node's thread.

        Read :attr:`outcome` to know whether the run completed, was cancelled or failed.

        >>> Node().close()
        """

    @property
    def stopping(self) -> bool:
        """True once the run this node belongs to is being cancelled or stopped by an error.

        Only useful inside long-blocking hooks (a live source waiting to reconnect); the
        runner itself checks between items.

        >>> Node().stopping
        False
        """
        event = self.__dict__.get("_stop_event")
        return event is not None and event.is_set()

    def wait_stopping(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early when the run stops; return :attr:`stopping`.

        Use it for back-off sleeps so that Ctrl-C does not wait for them to finish.

        >>> Node().wait_stopping(0.0)
        False
        """
        event: threading.Event | None = self.__dict__.get("_stop_event")
        if event is None:
            threading.Event().wait(timeout)
            return False
        return event.wait(timeout)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class SourceNode(Node):
    """The first node of a graph: produces items from :meth:`generate`, takes no input.

    The runner pulls items one by one and checks for cancellation between them; when
    the run stops early, the generator is closed (its ``finally`` blocks run) before
    :meth:`close` is called.

    >>> class Count(SourceNode):
    ...     def generate(self):
    ...         yield from range(2)
    >>> list(Count().generate())
    [0, 1]
    """

    def generate(self) -> Iterator[Any]:
        """Yield the stream's items in order; returning ends the stream.

        >>> SourceNode().generate()
        Traceback (most recent call last):
        ...
        NotImplementedError: SourceNode.generate() is not implemented
        """
        raise NotImplementedError(f"{type(self).__name__}.generate() is not implemented")


class SinkNode(Node):
    """The last node of a graph: consumes items, emits nothing, finalises in :meth:`close`.

    ``self.outcome`` is set to ``"complete"``, ``"cancelled"`` or ``"error"`` before
    :meth:`close` runs, so that a file sink can finalise a playable file in every case and,
    for instance, report or remove a partial one. The default :meth:`process` discards
    its item (a null sink, handy for benchmarks).

    >>> class Print(SinkNode):
    ...     def process(self, item):
    ...         print(item)
    >>> Print().process("hello")
    hello
    """

    def process(self, item: Any) -> Iterable[Any] | None:
        """Consume one item; return None (anything returned is iterated and discarded).

        >>> SinkNode().process(1) is None
        True
        """
        return None


class FunctionNode(Node):
    """A one-in one-out node around a plain function ``fn(item) -> item``.

    The name defaults to the function's ``__name__`` (the class name for lambdas).

    >>> def half(x):
    ...     return x / 2
    >>> node = FunctionNode(half)
    >>> node.name, list(node.process(3))
    ('half', [1.5])
    """

    def __init__(self, fn: Callable[[Any], Any], name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"FunctionNode needs a callable, got {type(fn).__name__}")
        fn_name = getattr(fn, "__name__", None)
        if fn_name == "<lambda>":
            fn_name = None
        super().__init__(name=name or fn_name)
        self.fn = fn

    def process(self, item: Any) -> Iterable[Any]:
        """Return ``[fn(item)]``.

        >>> list(FunctionNode(str).process(7))
        ['7']
        """
        return (self.fn(item),)
