"""One graph model for both workflow formats, so conversion rules are written once.

A `Graph` holds nodes (each with its original JSON object, kept verbatim unless the node is converted) and edges
(output slot -> named input). `from_ui` / `to_ui` read and write a UI graph (the root, or a subgraph definition;
links as 0.4 arrays or version-1 objects; subgraph inputs / outputs as the pseudo nodes -10 / -20); `from_api` /
`to_api` an API prompt. Untouched nodes and links are written back as they were, links that point nowhere (left by
older editors) included; inputs are matched by name, never by slot number alone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from .specs import TARGETS, Spec

IO_NODES = (-10, -20)  # a subgraph definition's input and output nodes


@dataclass
class Edge:
    id: int
    src: Any
    slot: int
    dst: Any
    input: str  # the input's name (for a subgraph's output node: its slot number, as a string)
    type: Any


@dataclass
class Node:
    id: Any
    type: str
    raw: dict  # the UI node object or API node, as read
    values: dict = field(default_factory=dict)  # named widget values: decoded (source) or to write (converted)
    changed: bool = False  # converted or new: written from its target spec
    touched: bool = False  # an edge into or out of it changed: its link fields are rewritten


class Graph:
    def __init__(self, form: str):
        self.form = form  # "ui" or "api"
        self.nodes: dict[Any, Node] = {}
        self.edges: dict[int, Edge] = {}
        self.order: list[Any] = []  # node order as read (new nodes appended)
        self.link_order: list[int] = []
        self.dangling: list = []  # links kept verbatim that join no two known nodes
        self.raw: dict = {}

    # ---- queries ----------------------------------------------------------------------------------------------
    def inputs(self, node_id) -> dict[str, Edge]:
        return {e.input: e for e in self.edges.values() if e.dst == node_id}

    def source(self, node_id, name: str):
        """The node feeding input `name` of `node_id`, or None."""
        edge = self.inputs(node_id).get(name)
        return None if edge is None else self.nodes.get(edge.src)

    def consumers(self, node_id, slot: int | None = None) -> list[Edge]:
        return [e for e in self.edges.values() if e.src == node_id and (slot is None or e.slot == slot)]

    # ---- changes ----------------------------------------------------------------------------------------------
    def _touch(self, *ids) -> None:
        for i in ids:
            if i in self.nodes:
                self.nodes[i].touched = True

    def link(self, src, slot: int, dst, name: str, kind=None) -> Edge:
        """Connect output `slot` of `src` to input `name` of `dst` (replacing what fed it)."""
        self.unlink(dst, name)
        if kind is None:
            spec = TARGETS.get(self.nodes[src].type)
            kind = spec.outputs[slot][1] if spec and slot < len(spec.outputs) else "*"
        edge = Edge(self._next_link(), src, slot, dst, name, kind)
        self.edges[edge.id] = edge
        self.link_order.append(edge.id)
        self._touch(src, dst)
        return edge

    def unlink(self, dst, name: str) -> None:
        for e in [e for e in self.edges.values() if e.dst == dst and e.input == name]:
            del self.edges[e.id]
            self._touch(e.src, e.dst)

    def move_consumers(self, edges: list[Edge], src, slot: int) -> None:
        """Re-point these edges (consumers of some output) at output `slot` of `src`, keeping their ids."""
        for e in edges:
            self._touch(e.src, src, e.dst)
            e.src, e.slot = src, slot
            spec = TARGETS.get(self.nodes[src].type)
            if spec and slot < len(spec.outputs):
                e.type = spec.outputs[slot][1]

    def convert(self, node: Node, kind: str, values: dict) -> Node:
        """Node `node` becomes a `kind` node (position, size, title, colours kept) with these widget values."""
        node.type, node.values, node.changed = kind, dict(values), True
        return node

    def add(self, kind: str, values: dict, near: Node, offset=(0, 0)) -> Node:
        """A new `kind` node placed at `near`'s position plus `offset` (pixels)."""
        new_id = self._next_node()
        pos = near.raw.get("pos", [0, 0]) if self.form == "ui" else [0, 0]
        if isinstance(pos, dict):
            pos = [pos.get("0", 0), pos.get("1", 0)]
        raw = {"id": new_id, "pos": [pos[0] + offset[0], pos[1] + offset[1]], "size": [320, 130], "flags": {},
               "order": near.raw.get("order", 0), "mode": near.raw.get("mode", 0)} if self.form == "ui" else {}
        node = Node(new_id, kind, raw, dict(values), changed=True)
        self.nodes[new_id] = node
        self.order.append(new_id)
        return node

    def remove(self, node_id) -> None:
        for e in [e for e in self.edges.values() if node_id in (e.src, e.dst)]:
            del self.edges[e.id]
            self._touch(e.src, e.dst)
        del self.nodes[node_id]
        self.order.remove(node_id)

    def _next_node(self):
        ids = [int(i) for i in self.order if isinstance(i, int) or (isinstance(i, str) and i.isdigit())]
        last = max(ids + [int(self.raw.get("last_node_id") or 0), int(self._state().get("lastNodeId") or 0)])
        self._set_last("node", last + 1)
        return last + 1 if self.form == "ui" else str(last + 1)

    def _next_link(self) -> int:
        last = max(list(self.edges) + [int(self.raw.get("last_link_id") or 0),
                                       int(self._state().get("lastLinkId") or 0), 0] +
                   [_link_id(d) for d in self.dangling])
        self._set_last("link", last + 1)
        return last + 1

    def _state(self) -> dict:
        return self.raw.get("state") or {} if self.form == "ui" else {}

    def _set_last(self, what: str, value: int) -> None:
        if self.form != "ui":
            return
        if isinstance(self.raw.get("state"), dict):
            self.raw["state"]["lastNodeId" if what == "node" else "lastLinkId"] = value
        if f"last_{what}_id" in self.raw:
            self.raw[f"last_{what}_id"] = value


def _link_id(link) -> int:
    if isinstance(link, dict):
        return int(link.get("id") or 0)
    return int(link[0]) if isinstance(link, list) and link and isinstance(link[0], (int, float)) else 0


def _link_fields(link) -> tuple:
    """(id, origin, origin slot, target, target slot, type) of a 0.4 array or a version-1 object."""
    if isinstance(link, dict):
        return (link.get("id"), link.get("origin_id"), link.get("origin_slot"), link.get("target_id"),
                link.get("target_slot"), link.get("type"))
    return tuple(link[:6]) + (None,) * (6 - len(link[:6]))


# ---- UI -------------------------------------------------------------------------------------------------------
def from_ui(data: dict) -> Graph:
    """A Graph over a UI graph (root or subgraph definition); `data` is kept as graph.raw (not modified)."""
    g = Graph("ui")
    g.raw = data
    for raw in data.get("nodes") or []:
        node = Node(raw.get("id"), raw.get("type", ""), raw)
        g.nodes[node.id] = node
        g.order.append(node.id)
    for io in IO_NODES:
        if any(_link_fields(link)[1] == io or _link_fields(link)[3] == io for link in data.get("links") or []):
            g.nodes[io] = Node(io, "<subgraph io>", {})
    for link in data.get("links") or []:
        lid, src, slot, dst, dslot, kind = _link_fields(link)
        name = _input_name(g, dst, lid, dslot)
        if src not in g.nodes or name is None:
            g.dangling.append(link)
            continue
        g.edges[lid] = Edge(lid, src, int(slot), dst, name, kind)
        g.link_order.append(lid)
    return g


def _input_name(g: Graph, dst, link_id, slot) -> str | None:
    if dst == -20:
        return str(slot)
    node = g.nodes.get(dst)
    if node is None:
        return None
    inputs = node.raw.get("inputs") or []
    for inp in inputs:
        if inp.get("link") == link_id:
            return inp.get("name")
    return None


def to_ui(g: Graph, encode) -> dict:
    """The UI graph back; `encode(node) -> widgets_values` for converted nodes."""
    out = copy.copy(g.raw)
    written: dict[Any, dict] = {}
    for node_id in g.order:
        node = g.nodes[node_id]
        if node.changed:
            written[node_id] = _converted_ui(g, node, encode(node))
        elif node.touched:
            written[node_id] = _relinked_ui(g, node)
        else:
            written[node_id] = node.raw
    links = []
    for lid in g.link_order:
        e = g.edges.get(lid)
        if e is None:
            continue
        target = written.get(e.dst)
        slot = int(e.input) if e.dst == -20 else next(
            (i for i, inp in enumerate(target.get("inputs") or []) if inp.get("name") == e.input), 0)
        if _object_links(g.raw):
            links.append({"id": e.id, "origin_id": e.src, "origin_slot": e.slot, "target_id": e.dst,
                          "target_slot": slot, "type": e.type})
        else:
            links.append([e.id, e.src, e.slot, e.dst, slot, e.type])
    out["nodes"] = [written[i] for i in g.order]
    out["links"] = _keep_order(g.raw.get("links") or [], links) + g.dangling
    return out


def _object_links(raw: dict) -> bool:
    """Version-1 graphs (and every subgraph definition) store links as objects; 0.4 graphs as arrays."""
    links = raw.get("links") or []
    return raw.get("version") == 1 or "state" in raw or bool(links and isinstance(links[0], dict))


def _keep_order(original: list, links: list) -> list:
    """Links in their original order (unchanged ones as they were), new ones after."""
    by_id = {_link_id(link): link for link in links}
    kept = []
    for link in original:
        lid = _link_id(link)
        if lid in by_id:
            new = by_id.pop(lid)
            kept.append(link if _link_fields(new)[:5] == _link_fields(link)[:5] else new)
    return kept + list(by_id.values())


def _relinked_ui(g: Graph, node: Node) -> dict:
    raw = copy.deepcopy(node.raw)
    feeding = g.inputs(node.id)
    for inp in raw.get("inputs") or []:
        edge = feeding.get(inp.get("name"))
        if edge is not None:
            inp["link"] = edge.id
        elif inp.get("link") is not None and not _is_dangling(g, inp["link"]):
            inp["link"] = None  # its edge was removed (it came from a merged source node)
    for slot, out in enumerate(raw.get("outputs") or []):
        out["links"] = [e.id for e in g.consumers(node.id, slot)] or None
    return raw


def _is_dangling(g: Graph, link_id) -> bool:
    return any(_link_id(d) == link_id for d in g.dangling)


def _converted_ui(g: Graph, node: Node, widgets: list) -> dict:
    spec: Spec = TARGETS[node.type]
    keep = ("id", "pos", "size", "flags", "order", "mode", "title", "color", "bgcolor", "shape")
    raw = {k: copy.deepcopy(v) for k, v in node.raw.items() if k in keep}
    raw["type"] = node.type
    feeding = g.inputs(node.id)
    inputs = [{"name": name, "type": kind, "link": feeding[name].id if name in feeding else None}
              for name, kind in spec.sockets]
    for name, _ in spec.widgets:  # a widget fed by a link (a primitive, a schedule node) keeps its socket
        if name in feeding:
            inputs.append({"name": name, "type": feeding[name].type, "widget": {"name": name},
                           "link": feeding[name].id})
    raw["inputs"] = inputs
    raw["outputs"] = [{"name": name, "type": kind, "links": [e.id for e in g.consumers(node.id, slot)] or None,
                       "slot_index": slot} for slot, (name, kind) in enumerate(spec.outputs)]
    raw["properties"] = {"Node name for S&R": node.type}
    raw["widgets_values"] = widgets
    return {k: raw[k] for k in ("id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "title",
                                "properties", "widgets_values", "color", "bgcolor", "shape") if k in raw}


def encode_widgets(node: Node) -> list:
    """A converted node's widgets_values in its target's order, with a control value after a seed."""
    spec = TARGETS[node.type]
    out = []
    for name, default in spec.widgets:
        out.append(node.values.get(name, default))
        if name in spec.control:
            out.append(node.values.get(f"{name}:control", "fixed"))
    return out


# ---- API ------------------------------------------------------------------------------------------------------
def from_api(data: dict) -> Graph:
    g = Graph("api")
    g.raw = data
    lid = 0
    for node_id, raw in data.items():
        g.nodes[node_id] = Node(node_id, raw.get("class_type", ""), raw)
        g.order.append(node_id)
    for node_id, raw in data.items():
        for name, value in (raw.get("inputs") or {}).items():
            if _is_api_link(value):
                lid += 1
                g.edges[lid] = Edge(lid, str(value[0]), int(value[1]), node_id, name, None)
                g.link_order.append(lid)
    return g


def _is_api_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) and \
        isinstance(value[1], int) and not isinstance(value[1], bool)


def to_api(g: Graph) -> dict:
    out = {}
    for node_id in g.order:
        node = g.nodes[node_id]
        if not node.changed and not node.touched:
            out[node_id] = node.raw
            continue
        feeding = g.inputs(node_id)
        if node.changed:
            spec = TARGETS[node.type]
            inputs = {name: node.values.get(name, default) for name, default in spec.widgets}
            names = [n for n, _ in spec.sockets] + list(inputs)
            for name in names:
                if name in feeding:
                    inputs[name] = [str(feeding[name].src), feeding[name].slot]
            inputs = {n: inputs[n] for n in names if n in inputs}
            entry = {"inputs": inputs, "class_type": node.type}  # (a source node's title would name the old node)
        else:
            entry = copy.deepcopy(node.raw)
            for name, value in list(entry.get("inputs", {}).items()):
                if _is_api_link(value):
                    if name in feeding:
                        entry["inputs"][name] = [str(feeding[name].src), feeding[name].slot]
                    else:
                        del entry["inputs"][name]
        out[node_id] = entry
    return out
