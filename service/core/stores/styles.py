"""Style images and their descriptions (Keys.style, Keys.style_meta): uploaded by the API,
read by jobs that train on them."""

from __future__ import annotations

import json

from service.core import usage
from service.core.errors import NotFound
from service.core.keys import Keys, check_id
from service.core.storage import ObjectNotFound
from service.core.stores.in_use import refuse_if_used
from service.core.stores.jobs import Jobs
from service.core.stores.record_store import RecordStore


class Styles:
    def __init__(self, records: RecordStore, jobs: Jobs):
        self.store = records.store
        self.jobs = jobs

    def meta(self, style_id: str, scope: str | None = None) -> dict:
        """A style's description; NotFound if there is none (or it is another owner's)."""
        key = Keys.style_meta(check_id(style_id, "style"))
        try:
            meta = json.loads(self.store.get_bytes(key))
        except ObjectNotFound:
            if not self.store.exists(Keys.style(style_id)):
                raise NotFound(f"no style {style_id!r}") from None
            meta = {"id": style_id, "owner": "", "width": None, "height": None, "name": None, "created_at": None}
        if scope is not None and meta.get("owner", "") != scope:
            raise NotFound(f"no style {style_id!r}")
        return meta

    def exists(self, style_id: str, scope: str | None = None) -> bool:
        try:
            self.meta(style_id, scope)
            return True
        except NotFound:
            return False

    def list(self, scope: str | None = None) -> list[dict]:
        """Every style's description (id, width, height, name, created_at), newest first."""
        metas = []
        for key in [k for k in self.store.list("styles") if k.endswith("/style.png")]:
            try:
                metas.append(self.meta(key.split("/")[1], scope))
            except NotFound:  # another owner's, or deleted meanwhile
                continue
        return sorted(metas, key=lambda m: m["created_at"] or "", reverse=True)

    def delete(self, style_id: str, scope: str | None = None) -> int:
        """A style no unfinished job uses (finished networks keep theirs: checkpoints carry it)."""
        owner = self.meta(style_id, scope).get("owner", "")
        refuse_if_used(self.jobs, "style", style_id, lambda j: any(s["id"] == style_id for s in j.style_list))
        return usage.delete_prefix(self.store, owner, Keys.style_prefix(style_id))
