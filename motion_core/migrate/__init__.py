"""Convert ComfyUI workflows built on ComfyUI-AnimateDiff-Evolved (Gen1, Gen2, legacy nodes) or ArtVentureX's
comfyui-animatediff to motion_core's nodes, keeping everything else: links rewired, positions, sizes, groups,
titles and colours kept, every other node untouched, inside subgraphs too; what has no equivalent stays as it was
and is reported.

    from motion_core.migrate import migrate, read_workflow
    result = migrate(read_workflow("old.json"))        # or migrate(a parsed dict)
    print("\\n".join(result.report.lines()))
    result.save("new.json")
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from .graph import encode_widgets, from_api, from_ui, to_api, to_ui
from .read import NotAWorkflowError, Workflow, from_data, read_workflow
from .report import Note, Report
from .rules import is_source, migrate_graph

__all__ = ["Migration", "NotAWorkflowError", "Note", "Report", "Workflow", "is_source", "migrate", "read_workflow"]


@dataclass
class Migration:
    workflow: Workflow  # the converted workflow, in the form it was read
    report: Report

    def data(self):
        """What to write: the UI graph, the API prompt, or the wrapper they came in."""
        w = self.workflow
        if w.form == "ui" or (w.form in ("embedded", "prompt body") and w.ui is not None):
            return w.ui
        if w.form == "api" or w.ui is None:
            return w.api
        api_key, ui_key = w.form.split("+")
        return {ui_key: w.ui, api_key: w.api}

    def save(self, path: str | Path) -> Path:
        from ..formats.files import atomic_write
        text = json.dumps(self.data(), indent=2, ensure_ascii=False) + "\n"
        atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return Path(path)


def migrate(workflow) -> Migration:
    """A converted copy of `workflow` (a Workflow, or parsed JSON in any form read_workflow accepts) and its
    report. The input is not changed."""
    if not isinstance(workflow, Workflow):
        workflow = from_data(workflow)
    report = Report()
    ui = _migrate_ui(copy.deepcopy(workflow.ui), report) if workflow.ui is not None else None
    api = None
    if workflow.api is not None:
        api_report = report if workflow.ui is None else Report()  # one report: the UI graph's, when there is one
        g = from_api(copy.deepcopy(workflow.api))
        migrate_graph(g, api_report)
        api = to_api(g)
    return Migration(Workflow(ui, api, workflow.form, workflow.source), report)


def _migrate_ui(data: dict, report: Report) -> dict:
    """The root graph, then every subgraph definition (nested ones too), each with its own ids. Group nodes (the
    front end's older, deprecated grouping) are reported, not converted: their slots are laid out from every inner
    node's definition, which only a running ComfyUI knows."""
    for name, group in ((data.get("extra") or {}).get("groupNodes") or {}).items():
        for index, inner in enumerate(group.get("nodes") or []):
            if is_source(inner.get("type", "")):
                report.add(f"{name}/{inner.get('index', index)}", inner["type"], "left",
                           f"inside group node {name!r}: not converted; in ComfyUI, right-click the group node > "
                           "Convert to nodes (the editor's Convert command does this itself), then convert again")
    definitions = (data.get("definitions") or {}).get("subgraphs") or []
    for i, definition in enumerate(definitions):
        scope = report.scope
        report.scope = f"{scope}{definition.get('name') or definition.get('id')}/"
        definitions[i] = _migrate_ui(definition, report)
        report.scope = scope
    g = from_ui(data)
    migrate_graph(g, report)
    return to_ui(g, encode_widgets)
