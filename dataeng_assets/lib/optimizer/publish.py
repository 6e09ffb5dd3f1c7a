"""Write the optimizer report to the data home and describe it as asset metadata."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from dataeng_assets.lib import env
from dataeng_assets.lib.optimizer.report import render, to_markdown

REPORT_RUNS = 50  # history the report analyzes: enough for trends and regressions, cheap to read


def report_dir() -> Path:
    return env.data_home() / "optimizer"


def write_files(report: dict) -> dict[str, Path]:
    folder = report_dir()
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt, ext in (("json", "json"), ("markdown", "md"), ("html", "html")):
        path = folder / f"report.{ext}"
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(render(report, fmt), encoding="utf-8")
        tmp.replace(path)  # readers (the UI link, the CLI) never see half a report
        paths[fmt] = path
    return paths


def metadata(report: dict, paths: dict[str, Path]) -> dict:
    recs = report["recommendations"]
    top = recs[0] if recs else None
    return {
        "report": dg.MetadataValue.md(to_markdown(report)),
        "html": dg.MetadataValue.path(str(paths["html"])),
        "json": dg.MetadataValue.path(str(paths["json"])),
        "runs_analyzed": dg.MetadataValue.int(report["summary"]["runs"]),
        "recommendations": dg.MetadataValue.int(len(recs)),
        "top_recommendation": dg.MetadataValue.text(top["title"] if top else "none"),
        "total_runtime_s": dg.MetadataValue.float(float(report["summary"]["total_runtime_s"])),
    }
