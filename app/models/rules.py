"""The installation's rules for turning deals into invoices: what each pipeline stage does,
and which Xero item, account and tax type a CRM product or tax label becomes."""

from __future__ import annotations

import enum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.columns import string_enum


class StageAction(str, enum.Enum):
    NONE = "none"
    DRAFT = "draft"
    AUTHORISE = "authorise"
    AUTHORISE_AND_EMAIL = "authorise_and_email"


class StageRule(db.Model):
    """When a deal enters this pipeline stage, do this to its invoice."""

    __tablename__ = "stage_rule"
    __table_args__ = (UniqueConstraint("installation_id", "pipeline_id", "stage_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"), index=True)
    pipeline_id: Mapped[str] = mapped_column(String(64))
    stage_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[StageAction] = mapped_column(string_enum(StageAction))


class ProductMapping(db.Model):
    """A CRM product's Xero item and account code (and tax type, if not the default)."""

    __tablename__ = "product_mapping"
    __table_args__ = (UniqueConstraint("installation_id", "crm_product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"), index=True)
    crm_product_id: Mapped[str] = mapped_column(String(64))
    xero_item_code: Mapped[str | None] = mapped_column(String(64))
    account_code: Mapped[str | None] = mapped_column(String(32))
    tax_type: Mapped[str | None] = mapped_column(String(64))


class TaxMapping(db.Model):
    """A CRM tax label or rate -> the Xero TaxType of this organisation."""

    __tablename__ = "tax_mapping"
    __table_args__ = (UniqueConstraint("installation_id", "crm_tax_label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(ForeignKey("installation.id"), index=True)
    crm_tax_label: Mapped[str] = mapped_column(String(128))
    xero_tax_type: Mapped[str] = mapped_column(String(64))
