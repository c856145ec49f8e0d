"""HubSpot's CRM record endpoints: v3 objects (single, list, batch, search) and v4
association reads. Each handler is called as ``handler(ctx, **path_values)`` under the
fake's lock, `Ctx` being what it sees of its call; query booleans (``archived``) only as
``true``/``false``, the specs' form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn

from werkzeug.wrappers import Request, Response

from sandbox.hubspot.errors import (
    PropertyProblem, ValidationFailed, fail, missing_scopes, standard_error,
)
from sandbox.hubspot.render import no_associations, render_object, v4_targets
from sandbox.hubspot.schema import (
    API_HOST, ASSOCIATION_TYPES, OBJECT_TYPES, JsonObject, ObjectType, id_key, iso_ms,
)
from sandbox.hubspot.schema import object_type as type_of
from sandbox.hubspot.search import search_records, sort_records
from sandbox.hubspot.state import ChangeSource, CrmObject, PortalCrm
from sandbox.kit.clock import Clock
from sandbox.kit.errors import VendorError
from sandbox.kit.jsonio import json_response, query_bool, query_int, query_list, read_object
from sandbox.kit.service import ApiRoute, Exchange

MAX_BATCH_INPUTS = 100  # platform-facts: batch update 100 per call (also read/create)
MAX_ASSOCIATION_BATCH_INPUTS = 1000  # v4 association batch read: "may not exceed 1000 IDs per
# request body" (developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api)
MAX_SEARCH_RESULTS = 10_000  # search docs: "limited to 10,000 total results for any given query"
MAX_SEARCH_LIMIT = 200  # deals-v3.json PublicObjectSearchRequest.limit: "up to 200"


@dataclass
class Ctx:
    """One authenticated CRM call: its portal and the calling app."""

    exchange: Exchange[Any]
    portal: PortalCrm
    app_id: int
    scopes: frozenset[str]
    clock: Clock
    association_page: Callable[[str, list[JsonObject], JsonObject], JsonObject]
    """`HubSpotCrmApi._association_page`: one input's page of a v4 batch read."""

    @property
    def request(self) -> Request:
        return self.exchange.request

    @property
    def source(self) -> ChangeSource:
        return ChangeSource.integration(self.app_id)

    def require(self, any_of: Sequence[str]) -> None:
        """403 MISSING_SCOPES unless the token has one of `any_of` (empty: no check)."""
        if any_of and not self.scopes & set(any_of):
            raise VendorError(missing_scopes(any_of))

    def object_type(self, name: str, access: str) -> ObjectType:
        """The type named in the path, once the token may `access` ("read", "write",
        "schema_read", "schema_write") it."""
        otype = type_of(name)
        self.require(getattr(otype, f"{access}_scopes"))
        return otype

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)


def routes(rule: str, policy: str = "ten_secondly",
           **handlers: Callable[..., Response]) -> list[ApiRoute]:
    """One rule's endpoints: a handler per HTTP method (``GET=...``), `policy` its limit."""
    return [ApiRoute(rule, (method,), handler, policy) for method, handler in handlers.items()]


# ----- request parts ----------------------------------------------------------------


def str_list(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        fail(400, "VALIDATION_ERROR", f"{name} must be an array of strings")
    return list(value)


def batch_inputs(ctx: Ctx, limit: int = MAX_BATCH_INPUTS) -> list[JsonObject]:
    inputs = read_object(ctx.request).get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        fail(400, "VALIDATION_ERROR", "inputs must be an array of objects")
    if len(inputs) > limit:
        fail(400, "VALIDATION_ERROR",
             f"Batch input of {len(inputs)} inputs is too large; the limit is {limit}.",
             context={"maxInputs": [str(limit)]})
    return inputs


def input_id(item: JsonObject) -> str:
    value = item.get("id")
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        fail(400, "VALIDATION_ERROR", "every input needs an id")
    return str(value)


def property_values(value: object) -> dict[str, str | None]:
    """A request's `properties` object; JSON numbers and booleans become strings."""
    if not isinstance(value, dict):
        fail(400, "VALIDATION_ERROR", "properties must be an object")
    result: dict[str, str | None] = {}
    for name, raw in value.items():
        if raw is None or isinstance(raw, str):
            result[name] = raw
        elif isinstance(raw, bool):
            result[name] = "true" if raw else "false"
        elif isinstance(raw, int | Decimal):
            result[name] = str(raw)
        else:
            fail(400, "VALIDATION_ERROR", f"property {name} must be a string")
    return result


def association_inputs(ctx: Ctx, otype: ObjectType,
                       raw: object) -> list[tuple[ObjectType, str, list[int]]]:
    """`PublicAssociationsForObject` inputs, checked against the known types."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        fail(400, "VALIDATION_ERROR", "associations must be an array")
    links: list[tuple[ObjectType, str, list[int]]] = []
    for item in raw:
        to_id = str((item.get("to") or {}).get("id", "")) if isinstance(item, dict) else ""
        specs = item.get("types") if isinstance(item, dict) else None
        if not to_id or not isinstance(specs, list) or not specs:
            fail(400, "VALIDATION_ERROR", "each association needs to.id and types")
        type_ids = [int(spec.get("associationTypeId", 0)) for spec in specs]
        kinds = [ASSOCIATION_TYPES.get(t) for t in type_ids]
        if any(k is None or k.from_type != otype.name for k in kinds):
            fail(400, "VALIDATION_ERROR",
                 f"invalid association type ids {type_ids} for {otype.name}")
        target = OBJECT_TYPES[kinds[0].to_type]  # type: ignore[union-attr]
        if ctx.portal.find(target, to_id) is None:
            fail(400, "VALIDATION_ERROR",
                 f"{target.error_label} {to_id} does not exist to be associated")
        links.append((target, to_id, type_ids))
    return links


def validate_all(ctx: Ctx, otype: ObjectType,
                 batch: Iterable[tuple[dict[str, str | None], CrmObject | None]]) -> None:
    """All-or-nothing: every invalid value of every input in one 400."""
    problems: list[PropertyProblem] = []
    for values, current in batch:
        try:
            ctx.portal.validate(otype, values, strict=True, current=current)
        except ValidationFailed as err:
            problems += err.problems
    if problems:
        raise ValidationFailed(problems)


# ----- answers ------------------------------------------------------------------------


def batch_answer(ctx: Ctx, started_ms: int, results: list[JsonObject],
                 errors: Sequence[JsonObject] = (), ok_status: int = 200) -> Response:
    """A `BatchResponse`; with errors a 207 `BatchResponseWithErrors`."""
    body: JsonObject = {"status": "COMPLETE", "results": results,
                        "startedAt": iso_ms(started_ms), "completedAt": iso_ms(ctx.now_ms())}
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = list(errors)
    return json_response(body, status=207 if errors else ok_status)


def not_found_error(otype: ObjectType, verb: str, ids: Sequence[str]) -> JsonObject:
    return standard_error("OBJECT_NOT_FOUND", f"Could not {verb} some {otype.error_label} "
                          "objects, they may be deleted or not exist. Check that ids are valid.",
                          context={"ids": list(ids)})


def id_page(items: Sequence[Any], after: str | None, limit: int, path: str,
            render: Callable[[Any], JsonObject]) -> JsonObject:
    """Up to `limit` of `items` (in id order) from id `after` on, with the next page's link."""
    if after:
        items = [i for i in items if id_key(i.id) >= id_key(after)]
    body: JsonObject = {"results": [render(i) for i in items[:limit]]}
    if len(items) > limit:
        nxt = items[limit].id
        body["paging"] = {"next": {"after": nxt, "link": f"{API_HOST}{path}?after={nxt}"}}
    return body


def not_found(object_id: str) -> NoReturn:
    fail(404, "OBJECT_NOT_FOUND", "resource not found", context={"id": [object_id]})


# ----- v3 objects -----------------------------------------------------------------------


def get_object(ctx: Ctx, object_type: str, object_id: str) -> Response:
    otype = ctx.object_type(object_type, "read")
    args = ctx.request.args
    obj = ctx.portal.find(otype, object_id, args.get("idProperty"),
                          archived=query_bool(args, "archived"))
    if obj is None:
        not_found(object_id)
    associations = [type_of(name) for name in query_list(args, "associations")]
    return json_response(render_object(
        ctx.portal, obj, query_list(args, "properties"),
        with_history=query_list(args, "propertiesWithHistory"), associations=associations))


def list_objects(ctx: Ctx, object_type: str) -> Response:
    otype = ctx.object_type(object_type, "read")
    args = ctx.request.args
    # companies-v3.json GET /crm/v3/objects/companies `limit`: "default: 10"; 100 is the most
    # HubSpot's docs allow a page (developers.hubspot.com CRM API "Retrieve ... up to 100").
    limit = query_int(args, "limit", 10, minimum=1, maximum=100)
    records = sorted(ctx.portal.records(otype, archived=query_bool(args, "archived")),
                     key=lambda o: id_key(o.id))
    associations = [type_of(name) for name in query_list(args, "associations")]
    properties = query_list(args, "properties")
    page = id_page(records, args.get("after"), limit, ctx.request.path,
                   lambda o: render_object(ctx.portal, o, properties, associations=associations))
    return json_response(page)


def create_object(ctx: Ctx, object_type: str) -> Response:
    otype = ctx.object_type(object_type, "write")
    body = read_object(ctx.request)
    values = property_values(body.get("properties", {}))
    links = association_inputs(ctx, otype, body.get("associations"))
    obj = ctx.portal.create(otype, values, ctx.source, associations=links)
    return json_response(render_object(ctx.portal, obj, list(values)), status=201)


def patch_object(ctx: Ctx, object_type: str, object_id: str) -> Response:
    otype = ctx.object_type(object_type, "write")
    values = property_values(read_object(ctx.request).get("properties"))
    obj = ctx.portal.find(otype, object_id, ctx.request.args.get("idProperty"))
    if obj is None:
        not_found(object_id)
    obj = ctx.portal.update(otype, obj.id, values, ctx.source)
    return json_response(render_object(ctx.portal, obj, list(values)))


def delete_object(ctx: Ctx, object_type: str, object_id: str) -> Response:
    otype = ctx.object_type(object_type, "write")
    ctx.portal.archive(otype, object_id, ctx.source)
    return Response(status=204)


def merge_objects(ctx: Ctx, object_type: str) -> Response:
    """POST /crm/v3/objects/{type}/merge (companies-v3.json: PublicMergeInput, both ids
    required strings; 200 with the merged SimplePublicObject). Unverified: HubSpot's exact
    words and status for a missing or identical id (a 400 VALIDATION_ERROR here; 404 when a
    record does not exist, as a single read answers)."""
    otype = ctx.object_type(object_type, "write")
    body = read_object(ctx.request)
    ids = {key: body.get(key) for key in ("primaryObjectId", "objectIdToMerge")}
    for key, value in ids.items():
        if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
            fail(400, "VALIDATION_ERROR", f"{key} is required (a record id)")
    primary, merged = str(ids["primaryObjectId"]), str(ids["objectIdToMerge"])
    if primary == merged:
        fail(400, "VALIDATION_ERROR", "a record cannot be merged into itself")
    for object_id in (primary, merged):
        if ctx.portal.find(otype, object_id) is None:
            not_found(object_id)
    obj = ctx.portal.merge(otype, primary, merged, ctx.source)
    return json_response(render_object(ctx.portal, obj, []))


def batch_read(ctx: Ctx, object_type: str) -> Response:
    otype = ctx.object_type(object_type, "read")
    started = ctx.now_ms()
    body = read_object(ctx.request)
    inputs = batch_inputs(ctx)
    properties = str_list(body.get("properties"), "properties")
    history = str_list(body.get("propertiesWithHistory"), "propertiesWithHistory")
    archived = query_bool(ctx.request.args, "archived")
    found: dict[str, CrmObject] = {}
    missing: list[str] = []
    for obj_id in (input_id(item) for item in inputs):
        obj = ctx.portal.find(otype, obj_id, body.get("idProperty"), archived=archived)
        if obj is None:
            missing.append(obj_id)
        else:
            found.setdefault(obj.id, obj)
    results = [render_object(ctx.portal, o, properties, with_history=history)
               for o in found.values()]
    return batch_answer(ctx, started, results,
                        [not_found_error(otype, "get", missing)] if missing else [])


def batch_update(ctx: Ctx, object_type: str) -> Response:
    """All-or-nothing on invalid values (400); unknown ids come back as a 207 error."""
    otype = ctx.object_type(object_type, "write")
    started = ctx.now_ms()
    updates = [(input_id(i), property_values(i.get("properties"))) for i in batch_inputs(ctx)]
    ids = [obj_id for obj_id, _ in updates]
    duplicates = sorted({i for i in ids if ids.count(i) > 1}, key=id_key)
    if duplicates:
        fail(400, "VALIDATION_ERROR",
             f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
    live = [(i, v) for i, v in updates if ctx.portal.find(otype, i) is not None]
    missing = [i for i, _ in updates if ctx.portal.find(otype, i) is None]
    validate_all(ctx, otype, ((v, ctx.portal.find(otype, i)) for i, v in live))
    results = [render_object(ctx.portal, ctx.portal.update(otype, i, v, ctx.source), list(v))
               for i, v in live]
    return batch_answer(ctx, started, results,
                        [not_found_error(otype, "update", missing)] if missing else [])


def batch_create(ctx: Ctx, object_type: str) -> Response:
    otype = ctx.object_type(object_type, "write")
    started = ctx.now_ms()
    prepared = [(property_values(i.get("properties")),
                 association_inputs(ctx, otype, i.get("associations")))
                for i in batch_inputs(ctx)]
    validate_all(ctx, otype, ((values, None) for values, _ in prepared))
    results = [render_object(ctx.portal, ctx.portal.create(otype, v, ctx.source,
                                                           associations=links), list(v))
               for v, links in prepared]
    return batch_answer(ctx, started, results, ok_status=201)


def search(ctx: Ctx, object_type: str) -> Response:
    otype = ctx.object_type(object_type, "read")
    body = read_object(ctx.request)
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or not 0 <= limit <= MAX_SEARCH_LIMIT:
        fail(400, "VALIDATION_ERROR", f"limit must be between 0 and {MAX_SEARCH_LIMIT}")
    defs = ctx.portal.properties_of(otype)
    matches = search_records(ctx.portal.records(otype), defs, body.get("filterGroups") or [],
                             body.get("query"), otype)
    ordered = sort_records(matches, body.get("sorts") or [], defs)
    after = str(body.get("after") or "0")
    if not after.isdigit():
        fail(400, "VALIDATION_ERROR", f"after must be a paging token, not {after!r}")
    offset = int(after)
    if offset + limit > MAX_SEARCH_RESULTS:
        # developers.hubspot.com/docs/guides/api/crm/search (Limitations): "The search
        # endpoints are limited to 10,000 total results for any given query. Attempting to
        # page beyond 10,000 will result in a 400 error." (Unverified: whether a page that
        # ends past 10,000 is cut short instead; the fake refuses it as the docs read.)
        fail(400, "VALIDATION_ERROR", f"Search is limited to {MAX_SEARCH_RESULTS} results")
    properties = str_list(body.get("properties"), "properties")
    result: JsonObject = {"total": len(ordered), "results": [
        render_object(ctx.portal, o, properties) for o in ordered[offset:offset + limit]]}
    if offset + limit < len(ordered):
        result["paging"] = {"next": {"after": str(offset + limit)}}
    return json_response(result)


# ----- v4 associations ------------------------------------------------------------------


def association_batch(ctx: Ctx, from_type: str, to_type: str) -> Response:
    source, target = type_of(from_type), type_of(to_type)
    ctx.require(source.read_scopes)
    ctx.require(target.read_scopes)
    started = ctx.now_ms()
    results: list[JsonObject] = []
    errors: list[JsonObject] = []
    for item in batch_inputs(ctx, MAX_ASSOCIATION_BATCH_INPUTS):
        from_id = input_id(item)
        found = ctx.portal.find(source, from_id) is not None
        links = ctx.portal.links(source, from_id, target) if found else {}
        if links:
            results.append(ctx.association_page(from_id, v4_targets(links), item))
        else:
            errors.append(no_associations(source, target, from_id))
    return batch_answer(ctx, started, results, errors)


def association_list(ctx: Ctx, object_type: str, object_id: str, to_type: str) -> Response:
    source, target = type_of(object_type), type_of(to_type)
    ctx.require(source.read_scopes)
    ctx.require(target.read_scopes)
    if ctx.portal.find(source, object_id) is None:
        not_found(object_id)
    return json_response({"results": v4_targets(ctx.portal.links(source, object_id, target))})


_OBJECTS = "/crm/v3/objects/<object_type>"
ROUTES = [
    *routes(f"{_OBJECTS}/batch/read", POST=batch_read),
    *routes(f"{_OBJECTS}/batch/update", POST=batch_update),
    *routes(f"{_OBJECTS}/batch/create", POST=batch_create),
    *routes(f"{_OBJECTS}/search", "search", POST=search),
    *routes(f"{_OBJECTS}/merge", POST=merge_objects),
    *routes(_OBJECTS, GET=list_objects, POST=create_object),
    *routes(f"{_OBJECTS}/<object_id>", GET=get_object, PATCH=patch_object, DELETE=delete_object),
    *routes("/crm/v4/associations/<from_type>/<to_type>/batch/read", "exempt",
            POST=association_batch),
    *routes("/crm/v4/objects/<object_type>/<object_id>/associations/<to_type>",
            GET=association_list),
]
