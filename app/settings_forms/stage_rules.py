"""The page's "When a deal enters a stage" section: what Paydeck does when a deal enters each
stage of each CRM pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models import StageAction, StageRule
from app.settings_forms.section import Errors, TableSection, rows
from app.settings_forms.sources import Sources

ACTION_LABELS = {
    StageAction.NONE: "Nothing",
    StageAction.DRAFT: "Create a draft invoice",
    StageAction.AUTHORISE: "Create and approve the invoice",
    StageAction.AUTHORISE_AND_EMAIL: "Approve and email the invoice",
}

Stage = tuple[str, str]  # (pipeline id, stage id)


@dataclass(frozen=True)
class StageRules(TableSection):
    """A StageAction value per stage; a stage with no rule does nothing."""

    gate = "rules"
    by_stage: dict[Stage, str] = field(default_factory=dict)

    @classmethod
    def saved(cls, installation_id: int) -> StageRules:
        return cls({key: rule.action.value for key, rule in _existing(installation_id).items()})

    def unavailable(self, sources: Sources, crm_name: str) -> str | None:
        if sources.pipelines is None:
            return f"{crm_name}'s pipelines could not be loaded to check the stage rules."
        return None

    def read(self, form: MultiDict[str, str], sources: Sources, errors: Errors) -> StageRules:
        """Rules for the stages the CRM listed; saved rules for stages it no longer lists stay."""
        listed = sources.stages
        rules = {key: action for key, action in self.by_stage.items() if key not in listed}
        actions = {a.value for a in StageAction}
        for pipeline_id, stage_id, action in rows(form, ("rule_pipeline", "rule_stage", "rule_action"), errors):
            key, error = (pipeline_id, stage_id), f"rule:{pipeline_id}:{stage_id}"
            if key not in listed:
                errors[error] = f"Stage {stage_id} of pipeline {pipeline_id} is not one of the CRM's stages."
                continue
            if key in rules:
                errors[error] = "This stage was sent twice."
            elif action not in actions:
                errors[error] = "Choose one of the listed actions."
            rules[key] = action
        return replace(self, by_stage=rules)

    def error_keys(self, sources: Sources) -> set[str]:
        return {"rules"} | {f"rule:{pipeline_id}:{stage_id}" for pipeline_id, stage_id in sources.stages}

    def labels(self, sources: Sources) -> dict[str, Any]:
        # Saved rules for stages the CRM no longer lists: kept, shown, never fired.
        orphans = ({} if sources.pipelines is None else
                   {key: action for key, action in self.by_stage.items() if key not in sources.stages})
        return {"actions": ACTION_LABELS, "orphan_rules": orphans}

    def save(self, installation_id: int) -> dict[str, Any]:
        existing = _existing(installation_id)
        changed = []
        for (pipeline_id, stage_id), value in self.by_stage.items():
            action, row = StageAction(value), existing.get((pipeline_id, stage_id))
            before = row.action if row is not None else StageAction.NONE
            if action == StageAction.NONE:
                if row is not None:
                    db.session.delete(row)
            elif row is None:
                db.session.add(StageRule(installation_id=installation_id, pipeline_id=pipeline_id,
                                         stage_id=stage_id, action=action))
            else:
                row.action = action
            if before != action:
                changed.append({"pipeline": pipeline_id, "stage": stage_id, "from": before.value,
                                "to": action.value})
        return {"stage_rules": changed} if changed else {}


def _existing(installation_id: int) -> dict[Stage, StageRule]:
    return {(r.pipeline_id, r.stage_id): r for r in db.session.scalars(
        select(StageRule).where(StageRule.installation_id == installation_id))}
