"""A page's aliases: other URLs of it (old permalinks, an old domain) whose counts are its own."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from aggregator.api.admin import CLOSED_OR_NOT_ALLOWED, ERRORS, WriteDep, audit, page
from aggregator.api.counts import ERRORS as READ_ERRORS
from aggregator.api.deps import RuntimeDep, parse_url
from aggregator.api.errors import ApiError
from aggregator.api.models import AliasesRequest, AliasesResponse, ErrorBody
from aggregator.runtime import Runtime
from aggregator.store import AliasTaken

router = APIRouter(prefix="/api/v1", tags=["admin"])
NO_RECORD = {"model": ErrorBody, "description": "The page has no record"}
WRITE_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    403: {"model": ErrorBody, "description": CLOSED_OR_NOT_ALLOWED},
    404: NO_RECORD,
    409: {
        "model": ErrorBody,
        "description": "An alias is a page of its own or another page's alias: counting it "
        "here too would count its shares twice",
    },
}
PageQuery = Annotated[str, Query(description="Page URL", max_length=4096)]


def canonical_aliases(runtime: Runtime, url: str, raw: list[str], admin: bool) -> list[str]:
    """The aliases in canonical form, each once; checked like a page an admin tracks."""
    found: list[str] = []
    for alias in raw:
        try:
            canonical = page(runtime, alias, admin)
        except ApiError as exc:
            raise ApiError(exc.status, exc.error, f"alias {alias}: {exc.detail}") from exc
        if canonical == url:
            raise ApiError(400, "alias is the page", f"{alias} is the page itself")
        found.append(canonical)
    return list(dict.fromkeys(found))


async def replace_aliases(
    runtime: Runtime, admin: bool, url: str, aliases: list[str], action: str
) -> AliasesResponse:
    """Store a page's aliases and log the change in the audit log."""
    try:
        previous = await runtime.store.set_aliases(url, aliases)
    except AliasTaken as exc:
        raise ApiError(409, "alias taken", str(exc)) from exc
    if previous is None:
        raise ApiError(404, "not tracked", f"{url} has no record; track it first")
    detail = f"{', '.join(aliases) or 'none'} (were {', '.join(previous) or 'none'})"
    await audit(runtime, admin, action, url, detail)
    return AliasesResponse(url=url, aliases=aliases, previous=list(previous))


@router.get("/aliases", response_model=AliasesResponse, responses={**READ_ERRORS, 404: NO_RECORD})
async def get_aliases(runtime: RuntimeDep, url: PageQuery) -> AliasesResponse:
    """A page's aliases (the count answer shows them too)."""
    canonical = parse_url(url, runtime.settings)
    record = await runtime.store.get(canonical)
    if record is None:
        raise ApiError(404, "not tracked", f"{canonical} has no record")
    return AliasesResponse(url=canonical, aliases=list(record.aliases), previous=[])


@router.put("/aliases", response_model=AliasesResponse, responses=WRITE_ERRORS)
async def put_aliases(
    runtime: RuntimeDep, body: AliasesRequest, admin: WriteDep
) -> AliasesResponse:
    """Set every alias of a tracked page, replacing those it had: each is fetched from every
    network (in the variants its site's settings turn on) and its count added to the page's."""
    url = page(runtime, body.url, admin)
    aliases = canonical_aliases(runtime, url, body.aliases, admin)
    return await replace_aliases(runtime, admin, url, aliases, "aliases.set")


@router.delete("/aliases", response_model=AliasesResponse, responses=WRITE_ERRORS)
async def delete_aliases(
    runtime: RuntimeDep,
    admin: WriteDep,
    url: PageQuery,
    alias: Annotated[
        str | None, Query(description="Only this alias; all when left out", max_length=4096)
    ] = None,
) -> AliasesResponse:
    """Remove one alias of a page, or all; the counts already stored stay (they never drop)."""
    canonical = parse_url(url, runtime.settings)
    record = await runtime.store.get(canonical)
    if record is None:
        raise ApiError(404, "not tracked", f"{canonical} has no record")
    kept: list[str] = []
    if alias is not None:
        gone = parse_url(alias, runtime.settings)
        if gone not in record.aliases:
            raise ApiError(404, "not an alias", f"{gone} is not an alias of {canonical}")
        kept = [a for a in record.aliases if a != gone]
    return await replace_aliases(runtime, admin, canonical, kept, "aliases.delete")
