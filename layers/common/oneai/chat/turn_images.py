"""Images in a chat turn, before its transaction: the model must read images (else 422 before anything
is reserved), and the `data:` URL images of the body are stored in S3 first, so the transaction never
waits on S3 for them (they stay unattached, and so expire, unless the turn commits)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from oneai.attachments.images import InlineImage
from oneai.attachments.service import mark_attached_after_commit, put_inline_image
from oneai.attachments.storage import get_object_store
from oneai.chat.requests import ChatTurn
from oneai.errors import ValidationError, field_error
from oneai.openrouter.catalog import OpenRouterModel

CANNOT_READ_IMAGES = "This model cannot read images; choose one that does, or send the message without them"


def refuse_images_the_model_cannot_read(turn: ChatTurn, model: OpenRouterModel | None) -> None:
    """422 (field `attachments`) for images sent to a model whose input modalities lack `image`. A model
    the catalog does not know is given the images (OpenRouter refuses them if it must)."""
    if turn.has_images and model is not None and "image" not in model.input_modalities:
        raise ValidationError(
            CANNOT_READ_IMAGES,
            details={
                "errors": [field_error("attachments", f"{model.id} does not read images", "model_reads_no_images")]
            },
        )


def store_inline_images(user_id: uuid.UUID, images: Sequence[InlineImage]) -> list[tuple[uuid.UUID, InlineImage]]:
    if not images:
        return []
    store = get_object_store()
    return [(put_inline_image(store, user_id, image)[0], image) for image in images]


def keep_attached(keys: Sequence[str]) -> None:
    """After the turn committed: its images are a message's now."""
    if keys:
        mark_attached_after_commit(get_object_store(), keys)
