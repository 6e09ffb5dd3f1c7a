"""Declarative pipelines: every YAML file in the pipelines folder becomes assets, checks, a job
and a schedule (`lib/pipelines/`). A broken file is reported and skipped, visibly: it shows in
the UI as an asset of the group `pipeline_errors` whose description is the error, and the other
pipelines load as usual.
"""

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from dataeng_assets.lib.pipelines.build import PipelineDefs, build
from dataeng_assets.lib.pipelines.spec import PipelineError, load_file
from dataeng_assets.lib.quality.rules import RulesError

# The repository's pipelines/ folder (beside the package); DATAENG_PIPELINES_DIR points elsewhere.
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "pipelines"


def pipelines_dir() -> Path:
    return Path(os.environ.get("DATAENG_PIPELINES_DIR") or DEFAULT_DIR)


@dataclass
class Loaded:
    pipelines: list[PipelineDefs] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)


def load_pipelines(folder: Path | None = None) -> Loaded:
    folder = folder or pipelines_dir()
    out = Loaded()
    names: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            built = build(load_file(path))
            if built.pipeline.name in names:
                raise PipelineError(f"{path}: pipeline name {built.pipeline.name} is already used by {names[built.pipeline.name]}")
        except (PipelineError, RulesError) as e:
            out.errors.append((path, str(e)))
            warnings.warn(f"pipeline skipped: {e}", stacklevel=2)
            continue
        names[built.pipeline.name] = path
        out.pipelines.append(built)
    return out


def error_spec(path: Path, message: str) -> dg.AssetSpec:
    stem = "".join(c if c.isalnum() else "_" for c in path.stem.lower())
    return dg.AssetSpec(
        key=["pipeline_errors", stem],
        group_name="pipeline_errors",
        kinds={"yaml"},
        description=f"One broken pipeline file, skipped: {message}",
        metadata={"file": str(path), "error": message},
    )


def pipeline_definitions() -> dg.Definitions:
    loaded = load_pipelines()
    return dg.Definitions(
        assets=[a for p in loaded.pipelines for a in p.assets] + [error_spec(p, m) for p, m in loaded.errors],
        asset_checks=[c for p in loaded.pipelines for c in p.checks],
        jobs=[p.job for p in loaded.pipelines],
        schedules=[p.schedule for p in loaded.pipelines if p.schedule],
    )
