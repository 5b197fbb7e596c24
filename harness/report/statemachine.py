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

`render_svg(asl, statuses)` lays the states out in layers by their distance from StartAt (terminal
states last) and draws the edges (Catch edges dashed; edges that go up loop around the right side);
states inside Parallel/Map branches are drawn as their parent's box.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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

_BOX_W, _BOX_H, _GAP_X, _GAP_Y, _MARGIN = 190.0, 44.0, 40.0, 56.0, 30.0
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


def _layers(graph: StateGraph) -> list[list[str]]:
    """States by breadth-first distance from StartAt, in definition order within a layer; the
    terminal states (Succeed, Fail) on one last row, as the console draws them; unreachable ones
    on the row before it."""
    distance = {graph.start_at: 0}
    queue = deque([graph.start_at])
    while queue:
        name = queue.popleft()
        for edge in graph.edges:
            if edge.source == name and edge.target not in distance:
                distance[edge.target] = distance[name] + 1
                queue.append(edge.target)
    terminal = [name for name, kind in graph.states.items() if kind in ("Succeed", "Fail")]
    inner = {name: d for name, d in distance.items() if name not in terminal}
    unreachable = max(inner.values(), default=0) + 1
    layers: dict[int, list[str]] = {}
    for name in graph.states:
        if name not in terminal:
            layers.setdefault(inner.get(name, unreachable), []).append(name)
    rows = [layers[index] for index in sorted(layers)]
    return [*rows, terminal] if terminal else rows


def render_svg(asl: Mapping[str, Any], statuses: Mapping[str, str], title: str = "State machine") -> str:
    """The SVG picture; each state's <g> carries `data-state` and `data-status` for tools and tests."""
    graph = state_graph(asl)
    layers = _layers(graph)
    widest = max(len(layer) for layer in layers)
    width = 2 * _MARGIN + widest * _BOX_W + (widest - 1) * _GAP_X + 140  # room for back edges
    height = 2 * _MARGIN + len(layers) * _BOX_H + (len(layers) - 1) * _GAP_Y + 40  # and the legend
    centre: dict[str, tuple[float, float]] = {}
    for row, layer in enumerate(layers):
        row_width = len(layer) * _BOX_W + (len(layer) - 1) * _GAP_X
        left = (width - 140 - row_width) / 2
        for column, name in enumerate(layer):
            x = left + column * (_BOX_W + _GAP_X) + _BOX_W / 2
            y = _MARGIN + row * (_BOX_H + _GAP_Y) + _BOX_H / 2
            centre[name] = (x, y)
    body = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#546e7a"/></marker></defs>'
    ]
    for edge in graph.edges:
        body.append(_edge(edge, centre, width))
    for name, state_type in graph.states.items():
        body.append(_box(name, state_type, statuses.get(name, "not_reached"), centre[name]))
    body.append(_legend(height - 22))
    return document(width, height, body, title)


def _edge(edge: Edge, centre: Mapping[str, tuple[float, float]], width: float) -> str:
    (x1, y1), (x2, y2) = centre[edge.source], centre[edge.target]
    colour = EDGE_COLOURS[edge.kind]
    dash = {"stroke-dasharray": "5,4"} if edge.kind == "catch" else {}
    if y2 > y1:  # downwards: bottom of the source to the top of the target
        start, end = (x1, y1 + _BOX_H / 2), (x2, y2 - _BOX_H / 2)
        middle = (start[1] + end[1]) / 2
        path = (
            f"M {number(start[0])} {number(start[1])} C {number(start[0])} {number(middle)} "
            f"{number(end[0])} {number(middle)} {number(end[0])} {number(end[1])}"
        )
        label_at = ((start[0] + end[0]) / 2, middle)
    else:  # a loop back or a sideways step: around the right side of the picture
        side = width - 70
        start, end = (x1 + _BOX_W / 2, y1), (x2 + _BOX_W / 2, y2)
        path = (
            f"M {number(start[0])} {number(start[1])} C {number(side)} {number(start[1])} "
            f"{number(side)} {number(end[1])} {number(end[0])} {number(end[1])}"
        )
        label_at = (side - 30, (start[1] + end[1]) / 2)
    parts = [
        f'<g class="edge" data-source="{edge.source}" data-target="{edge.target}" data-kind="{edge.kind}">',
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
    if edge.label:
        parts.append(
            element(
                "text",
                {"x": label_at[0], "y": label_at[1], "font-size": 9, "fill": colour, "text-anchor": "middle"},
                edge.label,
            )
        )
    parts.append("</g>")
    return "".join(parts)


def _box(name: str, state_type: str, status: str, at: tuple[float, float]) -> str:
    fill, stroke = COLOURS.get(status, COLOURS["not_reached"])
    x, y = at[0] - _BOX_W / 2, at[1] - _BOX_H / 2
    rounded = 18.0 if state_type in ("Succeed", "Fail") else 6.0
    return "".join(
        [
            f'<g class="state" data-state="{name}" data-status="{status}" data-type="{state_type}">',
            element(
                "rect",
                {
                    "x": x,
                    "y": y,
                    "width": _BOX_W,
                    "height": _BOX_H,
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
