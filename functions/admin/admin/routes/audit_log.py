"""The audit log of admin writes, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from oneai.admin import service
from oneai.admin.models import AuditEntry, AuditLogQuery
from oneai.pagination import Page
from oneai.web import AdminPrincipal, Db

router = APIRouter(prefix="/admin", tags=["audit log"])


@router.get("/audit-log", summary="Every admin write, newest first; filter by target or actor")
def list_audit_log(admin: AdminPrincipal, db: Db, query: Annotated[AuditLogQuery, Query()]) -> Page[AuditEntry]:
    return service.audit_log(db, admin, query)
