"""Reading a person's stored photos (with presigned URLs) and templates (never the embeddings)."""

from __future__ import annotations

from uuid import UUID

import anyio.to_thread

from central.people.repository import get_person
from central.people.schemas import PhotoRead, TemplateRead
from central.runtime import Runtime

_PHOTOS = """
SELECT id, status, quality, width, height, created_at, object_key FROM enrollment_photos
 WHERE person_id = %s ORDER BY created_at, id
"""
_TEMPLATES = """
SELECT id, model_id, embedding_size, created_at, source_photo_id FROM templates
 WHERE person_id = %s ORDER BY created_at, id
"""


async def list_photos(runtime: Runtime, person_id: UUID) -> list[PhotoRead]:
    async with runtime.pool.connection() as conn:
        await get_person(conn, person_id)
        rows = await (await conn.execute(_PHOTOS, (person_id,))).fetchall()
    ttl = runtime.settings.presign_ttl_s

    def sign() -> list[str]:
        return [runtime.store.presigned_get(row[6], ttl) for row in rows]

    urls = await anyio.to_thread.run_sync(sign)
    return [
        PhotoRead(pid, status, quality, width, height, created, url)
        for (pid, status, quality, width, height, created, _), url in zip(rows, urls, strict=True)
    ]


async def list_templates(runtime: Runtime, person_id: UUID) -> list[TemplateRead]:
    async with runtime.pool.connection() as conn:
        await get_person(conn, person_id)
        rows = await (await conn.execute(_TEMPLATES, (person_id,))).fetchall()
    return [TemplateRead(*row) for row in rows]
