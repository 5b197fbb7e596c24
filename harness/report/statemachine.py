"""The state machine's path as the Step Functions console draws it: one box per state, coloured by status.

`state_graph(asl)` reads the ASL's top-level states and their edges (Next, Choices, Default, Catch);
`state_statuses(asl, history)` derives each state's status from the execution's history, as
GetExecutionHistory returns it (`*StateEntered` / `*StateExited` events name the state; a `*Failed`
or `*TimedOut` event fails the state it happens in):

- succeeded: entered and left normally;
- failed: the execution ended in it, or it is a Fail state that was reached;
- caught: an error happened in it and a Catch moved on to another state (an error that a Retry
  recovered from leaves the state succeeded);
- in_progress: entered and not left while the execution still runs;
- not_reached: never entered.

`render_svg(asl, statuses)` has Graphviz's `dot` (Debian's `graphviz` package, driven through PyPI's
`graphviz`) lay the states out and route the edges, and draws the picture itself from dot's `plain`
placement (Catch edges dashed; terminal states on the bottom rank); states inside Parallel/Map branches
are drawn as their parent's box. The console (`mlops.console`) draws the live graph with it too.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

from harness.report.svg import document, element, number

StateStatus = Literal["succeeded", "failed", "caught", "in_progress", "not_reached"]

# (fill, stroke) per status, after the console's green / red / orange / blue / grey.
COLOURS: dict[str, tuple[str, str]] = {
    "succeeded": ("#d7f0d2", "#2e8540"),
    "failed": ("#f9d6d5", "#c62828"),
    "caught": ("#ffe3c2", "#e07000"),
    "in_progress": ("#d2e6fa", "#1565c0"),
    "not_reached": ("#f0f0f0", "#9e9e9e"),
}
EDGE_COLOURS = {"next": "#546e7a", "choice": "#546e7a", "default": "#546e7a", "catch": "#c62828"}

_BOX_W, _BOX_H, _MARGIN = 190.0, 44.0, 30.0
_FAILURE_SUFFIXES = ("Failed", "TimedOut")
_EXECUTION_END_FAILURES = {"ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: Literal["next", "choice", "default", "catch"]
    label: str = ""


@dataclass(frozen=True)
class StateGraph:
    start_at: str
    states: dict[str, str]  # name -> Type, in definition order
    edges: tuple[Edge, ...]


def state_graph(asl: Mapping[str, Any]) -> StateGraph:
    states = asl.get("States")
    start = asl.get("StartAt")
    if not isinstance(states, Mapping) or not isinstance(start, str) or start not in states:
        raise ValueError("not a state machine definition: StartAt and States are needed")
    edges: list[Edge] = []
    for name, state in states.items():
        if state.get("Next"):
            edges.append(Edge(name, state["Next"], "next"))
        for index, choice in enumerate(state.get("Choices") or [], start=1):
            edges.append(Edge(name, choice["Next"], "choice", f"rule {index}"))
        if state.get("Default"):
            edges.append(Edge(name, state["Default"], "default", "default"))
        for catcher in state.get("Catch") or []:
            errors = ",".join(catcher.get("ErrorEquals") or [])
            edges.append(Edge(name, catcher["Next"], "catch", f"catch {errors}"))
    unknown = sorted({e.target for e in edges} - set(states))
    if unknown:
        raise ValueError(f"edges point at states that do not exist: {unknown}")
    return StateGraph(
        start, {name: str(state.get("Type", "")) for name, state in states.items()}, tuple(edges)
    )


def _state_name(event: Mapping[str, Any]) -> str | None:
    for key in ("stateEnteredEventDetails", "stateExitedEventDetails"):
        details = event.get(key)
        if isinstance(details, Mapping) and "name" in details:
            return str(details["name"])
    return None


def state_statuses(asl: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> dict[str, StateStatus]:
    """Each top-level state's status from the execution's history events (oldest first)."""
    graph = state_graph(asl)
    statuses: dict[str, StateStatus] = {name: "not_reached" for name in graph.states}
    current: str | None = None
    errored: set[str] = set()
    ended: str | None = None
    for event in sorted(history, key=lambda e: int(e.get("id", 0))):
        kind = str(event.get("type", ""))
        name = _state_name(event)
        if kind.endswith("StateEntered") and name in statuses:
            if current is not None and current != name and statuses[current] == "in_progress":
                statuses[current] = "caught" if current in errored else "succeeded"
            current = name
            statuses[name] = "in_progress"
        elif kind.endswith("StateExited") and name in statuses:
            statuses[name] = "caught" if name in errored else "succeeded"
            current = None if current == name else current
        elif kind in _EXECUTION_END_FAILURES or kind == "ExecutionSucceeded":
            ended = kind
        elif kind.endswith(_FAILURE_SUFFIXES) and current is not None:
            errored.add(current)
        elif kind.endswith("Succeeded") and current is not None:
            errored.discard(current)  # a Retry that worked: the state succeeded after all
    if ended in _EXECUTION_END_FAILURES and current is not None:
        statuses[current] = "failed"
    for name, state_type in graph.states.items():
        if state_type == "Fail" and statuses[name] != "not_reached":
            statuses[name] = "failed"
    return statuses


@dataclass(frozen=True)
class Layout:
    """Graphviz's placement, in SVG pixels (y down): box centres and sizes, edge paths, label spots."""

    width: float
    height: float
    boxes: dict[str, tuple[float, float, float, float]]  # name -> (centre x, centre y, width, height)
    edges: tuple[tuple[str, tuple[float, float] | None], ...]  # per graph edge: (SVG path, label spot)


class GraphvizMissing(RuntimeError):
    """Graphviz's `dot` is not installed (Debian: `apt-get install graphviz`)."""


_DPI = 72.0  # Graphviz's points per inch: plain output is in inches


def layout(graph: StateGraph) -> Layout:
    """Lays the graph out with Graphviz's `dot` (ranked top to bottom, edges routed around boxes) and
    reads the placement back from its `plain` output. Nodes are named n0, n1... so that no state
    name needs quoting; terminal states (Succeed, Fail) share the bottom rank, as the console draws them."""
    import graphviz

    names = list(graph.states)
    ids = {name: f"n{index}" for index, name in enumerate(names)}
    dot = graphviz.Digraph("statemachine", engine="dot")
    dot.attr(rankdir="TB", nodesep="0.45", ranksep="0.5", splines="spline")
    dot.attr("node", shape="box", fixedsize="true", width=number(_BOX_W / _DPI), height=number(_BOX_H / _DPI))
    dot.attr("edge", fontsize="9", fontname="Helvetica")
    for name in names:
        dot.node(ids[name], label="")
    terminal = [ids[name] for name, kind in graph.states.items() if kind in ("Succeed", "Fail")]
    if terminal:
        with dot.subgraph() as bottom:
            bottom.attr(rank="sink")
            for node in terminal:
                bottom.node(node)
    for edge in graph.edges:
        dot.edge(ids[edge.source], ids[edge.target], label=edge.label or None)
    try:
        plain = dot.pipe(format="plain", encoding="utf-8")
    except graphviz.ExecutableNotFound as error:
        raise GraphvizMissing(
            "the state machine is laid out by Graphviz's dot, which is not installed "
            "(Debian: apt-get install graphviz)"
        ) from error
    return _read_plain(plain, ids, graph)


def _read_plain(plain: str, ids: Mapping[str, str], graph: StateGraph) -> Layout:
    names = {node: name for name, node in ids.items()}
    boxes: dict[str, tuple[float, float, float, float]] = {}
    edges: list[tuple[str, tuple[float, float] | None]] = []
    height = width = 0.0

    def at(x: str, y: str) -> tuple[float, float]:
        return float(x) * _DPI + _MARGIN, (height - float(y)) * _DPI + _MARGIN

    for line in plain.splitlines():
        fields = shlex.split(line)
        if not fields:
            continue
        if fields[0] == "graph":
            width, height = float(fields[2]), float(fields[3])
        elif fields[0] == "node":
            x, y = at(fields[2], fields[3])
            boxes[names[fields[1]]] = (x, y, float(fields[4]) * _DPI, float(fields[5]) * _DPI)
        elif fields[0] == "edge":
            count = int(fields[3])
            points = [at(fields[4 + 2 * i], fields[5 + 2 * i]) for i in range(count)]
            rest = fields[4 + 2 * count :]
            label = at(rest[1], rest[2]) if len(rest) > 3 else None
            path = f"M {number(points[0][0])} {number(points[0][1])}"
            for index in range(1, len(points) - 2, 3):
                (ax, ay), (bx, by), (cx, cy) = points[index : index + 3]
                path += f" C {number(ax)} {number(ay)} {number(bx)} {number(by)} {number(cx)} {number(cy)}"
            edges.append((path, label))
    if len(edges) != len(graph.edges) or set(boxes) != set(graph.states):
        raise RuntimeError("Graphviz's plain output does not match the graph it was given")
    return Layout(width * _DPI + 2 * _MARGIN, height * _DPI + 2 * _MARGIN, boxes, tuple(edges))


def render_svg(asl: Mapping[str, Any], statuses: Mapping[str, str], title: str = "State machine") -> str:
    """The SVG picture; each state's <g> carries `data-state` and `data-status` for tools and tests."""
    graph = state_graph(asl)
    placed = layout(graph)
    width = max(placed.width, 2 * _MARGIN + 5 * 110)  # the legend's room
    height = placed.height + 40  # and its row
    body = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#546e7a"/></marker></defs>'
    ]
    for edge, (path, label_at) in zip(graph.edges, placed.edges, strict=True):
        body.append(_edge(edge, path, label_at))
    for name, state_type in graph.states.items():
        body.append(_box(name, state_type, statuses.get(name, "not_reached"), placed.boxes[name]))
    body.append(_legend(height - 22))
    return document(width, height, body, title)


def notice_svg(message: str, title: str = "State machine") -> str:
    """A picture that says why the state machine could not be drawn (e.g. Graphviz is missing)."""
    return document(760, 60, [element("text", {"x": _MARGIN, "y": 34, "font-size": 13}, message)], title)


def _edge(edge: Edge, path: str, label_at: tuple[float, float] | None) -> str:
    colour = EDGE_COLOURS[edge.kind]
    dash = {"stroke-dasharray": "5,4"} if edge.kind == "catch" else {}
    parts = [
        f'<g class="edge" data-source={quoteattr(edge.source)} data-target={quoteattr(edge.target)} '
        f'data-kind="{edge.kind}">',
        element(
            "path",
            {
                "d": path,
                "fill": "none",
                "stroke": colour,
                "stroke-width": 1.4,
                **dash,
                "marker-end": "url(#arrow)",
            },
        ),
    ]
    if edge.label and label_at is not None:
        parts.append(
            element(
                "text",
                {"x": label_at[0], "y": label_at[1], "font-size": 9, "fill": colour, "text-anchor": "middle"},
                edge.label,
            )
        )
    parts.append("</g>")
    return "".join(parts)


def _box(name: str, state_type: str, status: str, placed: tuple[float, float, float, float]) -> str:
    fill, stroke = COLOURS.get(status, COLOURS["not_reached"])
    at = placed[:2]
    x, y = at[0] - placed[2] / 2, at[1] - placed[3] / 2
    rounded = 18.0 if state_type in ("Succeed", "Fail") else 6.0
    return "".join(
        [
            f'<g class="state" data-state={quoteattr(name)} data-status="{status}" data-type="{state_type}">',
            element(
                "rect",
                {
                    "x": x,
                    "y": y,
                    "width": placed[2],
                    "height": placed[3],
                    "rx": rounded,
                    "fill": fill,
                    "stroke": stroke,
                    "stroke-width": 2.0 if status != "not_reached" else 1.0,
                },
            ),
            element("text", {"x": at[0], "y": at[1] - 2, "font-size": 12, "text-anchor": "middle"}, name),
            element(
                "text",
                {"x": at[0], "y": at[1] + 13, "font-size": 9, "fill": "#555555", "text-anchor": "middle"},
                f"{state_type} · {status.replace('_', ' ')}",
            ),
            "</g>",
        ]
    )


def _legend(y: float) -> str:
    parts = ['<g class="legend">']
    x = _MARGIN
    for status, (fill, stroke) in COLOURS.items():
        parts.append(
            element("rect", {"x": x, "y": y, "width": 14, "height": 14, "fill": fill, "stroke": stroke})
        )
        parts.append(element("text", {"x": x + 19, "y": y + 11, "font-size": 11}, status.replace("_", " ")))
        x += 110
    parts.append("</g>")
    return "".join(parts)
