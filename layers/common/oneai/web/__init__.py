"""Web layer shared by the FastAPI functions: app factory, auth dependency, error envelope."""

from oneai.web.app import create_app
from oneai.web.deps import AdminPrincipal, ChatPrincipal, CurrentPrincipal, Db, OptionalPrincipal

__all__ = ["AdminPrincipal", "ChatPrincipal", "CurrentPrincipal", "Db", "OptionalPrincipal", "create_app"]
