"""What a conversion did, node by node: converted, merged into another node, converted with a setting that only
approximately maps (the value used is named), or left as it was (why, and what is closest here)."""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("converted", "merged", "approximate", "left")


@dataclass(frozen=True)
class Note:
    node: str  # the node's id (in a subgraph: "<subgraph name>/<id>"; in a group node: "<group>/<index>")
    type: str  # its class type in the source workflow
    kind: str  # one of KINDS
    text: str


@dataclass
class Report:
    notes: list[Note] = field(default_factory=list)
    scope: str = ""  # prefix of node ids while converting inside a subgraph / group node

    def add(self, node_id, node_type: str, kind: str, text: str) -> None:
        assert kind in KINDS, kind
        self.notes.append(Note(f"{self.scope}{node_id}", node_type, kind, text))

    def of(self, kind: str) -> list[Note]:
        return [n for n in self.notes if n.kind == kind]

    @property
    def converted(self) -> int:
        return len({n.node for n in self.notes if n.kind in ("converted", "merged")})

    def lines(self) -> list[str]:
        if not self.notes:
            return ["no AnimateDiff-Evolved or ArtVentureX AnimateDiff nodes: nothing to convert"]
        out = []
        for kind, title in (("converted", "converted"), ("merged", "merged into another node"),
                            ("approximate", "converted, a setting maps only approximately"),
                            ("left", "left as they were (no motion_core equivalent)")):
            notes = self.of(kind)
            if notes:
                out.append(f"{title} ({len(notes)}):")
                out += [f"  #{n.node} {n.type}: {n.text}" for n in notes]
        return out

    def to_json(self) -> dict:
        return {"notes": [n.__dict__ for n in self.notes], "left": len(self.of("left")),
                "approximate": len(self.of("approximate")), "converted": self.converted}
