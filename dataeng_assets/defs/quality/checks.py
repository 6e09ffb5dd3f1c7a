"""The quality checks of every table: Pandera gates and the YAML rules in `rules/`."""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from dataeng_assets.lib.quality.checks import build_quality_checks
from dataeng_assets.lib.quality.rules import load_rules_dir
from dataeng_assets.lib.quality.schemas import MODELS

RULES_DIR = Path(__file__).parent / "rules"


def quality_checks(assets_defs: Sequence[dg.AssetsDefinition]) -> list[dg.AssetChecksDefinition]:
    return build_quality_checks(assets_defs, load_rules_dir(RULES_DIR), MODELS)
