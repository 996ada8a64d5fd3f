"""`POST /chatbots/{id}/retrieve` (API.md "Chatbots"): the chunks a chatbot would use for a query, with their
scores, to test its knowledge base: the knowledge search's items, restricted to the chatbot's ready
documents and its top_k and min_score (`oneai.chatbots.retrieval`). Members only: another workspace's (or
a deleted) chatbot is 404, before anything is embedded."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from oneai.chatbots import retrieval
from oneai.knowledge.document_models import KnowledgeResults
from oneai.web import CurrentPrincipal, Db
from oneai.web.errors import ErrorEnvelope
from oneai.web.ids import PathId

retrieve = APIRouter(prefix="/chatbots", tags=["chatbots"])


class RetrieveQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000, pattern=r"\S", description="what a visitor would ask")


@retrieve.post(
    "/{chatbot_id}/retrieve",
    summary="The chunks the chatbot would use for a query, with their scores (members)",
    responses={
        404: {"model": ErrorEnvelope, "description": "no such chatbot in a workspace of yours"},
        502: {"model": ErrorEnvelope, "description": "UPSTREAM_ERROR: the query could not be embedded; try again"},
    },
)
def retrieve_chunks(
    principal: CurrentPrincipal, db: Db, chatbot_id: PathId, body: RetrieveQuery
) -> KnowledgeResults:
    return KnowledgeResults(items=retrieval.retrieve(db, principal, chatbot_id, body.query))
