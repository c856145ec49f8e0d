"""HubSpot's CRM metadata endpoints: pipelines, properties and their groups, owners
(unpaged, as the specs say, except owners). Handlers as in `sandbox.hubspot.handlers`.
"""

from __future__ import annotations

from collections.abc import Mapping

from werkzeug.wrappers import Response

from sandbox.hubspot.errors import fail, standard_error
from sandbox.hubspot.handlers import Ctx, batch_answer, batch_inputs, id_page, routes
from sandbox.hubspot.render import render_group, render_owner, render_pipeline, render_property
from sandbox.hubspot.schema import (
    API_HOST, FIELD_TYPES, OWNER_SCOPES, PROPERTY_NAME, PROPERTY_TYPES, JsonObject, ObjectType,
    PropertyDef, PropertyGroup, option,
)
from sandbox.hubspot.schema import object_type as type_of
from sandbox.kit.jsonio import json_response, query_bool, query_int, read_object


def _created(body: JsonObject, location: str) -> Response:
    response = json_response(body, status=201)
    response.headers["Location"] = f"{API_HOST}/crm/v3/properties/{location}"
    return response


def list_pipelines(ctx: Ctx, object_type: str) -> Response:
    pipeline_type(ctx, object_type)
    return json_response({"results": [render_pipeline(p) for p in ctx.portal.pipelines]})


def get_pipeline(ctx: Ctx, object_type: str, pipeline_id: str) -> Response:
    pipeline_type(ctx, object_type)
    pipeline = next((p for p in ctx.portal.pipelines if p.id == pipeline_id), None)
    if pipeline is None:
        fail(404, "OBJECT_NOT_FOUND", f"No pipeline with id {pipeline_id}")
    return json_response(render_pipeline(pipeline))


def list_properties(ctx: Ctx, object_type: str) -> Response:
    otype = ctx.object_type(object_type, "schema_read")
    defs = ctx.portal.properties_of(otype).values()
    return json_response({"results": [render_property(d, ctx.portal, otype) for d in defs]})


def create_property(ctx: Ctx, object_type: str) -> Response:
    otype = ctx.object_type(object_type, "schema_write")
    body = read_object(ctx.request)
    defn = property_from_request(body, ctx.portal.groups_of(otype), ctx.now_ms())
    defs = ctx.portal.properties_of(otype)
    if defn.name in defs:
        fail(409, "OBJECT_ALREADY_EXISTS", f"A property named '{defn.name}' already exists.")
    defs[defn.name] = defn
    return _created(render_property(defn, ctx.portal, otype), f"{otype.name}/{defn.name}")


def batch_create_properties(ctx: Ctx, object_type: str) -> Response:
    """Create several; invalid input fails the batch (400), existing names are 207
    errors (unverified: HubSpot may answer 409 for the whole batch)."""
    otype = ctx.object_type(object_type, "schema_write")
    started = ctx.now_ms()
    inputs = batch_inputs(ctx)
    groups, defs = ctx.portal.groups_of(otype), ctx.portal.properties_of(otype)
    created = [property_from_request(i, groups, ctx.now_ms()) for i in inputs]
    results: list[JsonObject] = []
    errors: list[JsonObject] = []
    for defn in created:
        if defn.name in defs:
            errors.append(standard_error(
                "OBJECT_ALREADY_EXISTS", f"A property named '{defn.name}' already exists.",
                context={"name": [defn.name]}))
        else:
            defs[defn.name] = defn
            results.append(render_property(defn, ctx.portal, otype))
    return batch_answer(ctx, started, results, errors, ok_status=201)


def batch_read_properties(ctx: Ctx, object_type: str) -> Response:
    otype = ctx.object_type(object_type, "schema_read")
    started = ctx.now_ms()
    names = [str(i.get("name", "")) for i in batch_inputs(ctx)]
    defs = ctx.portal.properties_of(otype)
    results = [render_property(defs[n], ctx.portal, otype) for n in names if n in defs]
    missing = [n for n in names if n not in defs]
    errors = [standard_error("OBJECT_NOT_FOUND", f"Unable to find properties {missing}",
                             context={"names": missing})] if missing else []
    return batch_answer(ctx, started, results, errors)


def list_groups(ctx: Ctx, object_type: str) -> Response:
    otype = ctx.object_type(object_type, "schema_read")
    groups = ctx.portal.groups_of(otype).values()
    return json_response({"results": [render_group(g) for g in groups]})


def create_group(ctx: Ctx, object_type: str) -> Response:
    otype = ctx.object_type(object_type, "schema_write")
    body = read_object(ctx.request)
    name, label = body.get("name"), body.get("label")
    if not isinstance(name, str) or not PROPERTY_NAME.match(name):
        fail(400, "VALIDATION_ERROR", "name must be lower case letters, digits and _")
    if not isinstance(label, str) or not label:
        fail(400, "VALIDATION_ERROR", "label is required")
    groups = ctx.portal.groups_of(otype)
    if name in groups:
        fail(409, "OBJECT_ALREADY_EXISTS", f"A property group named '{name}' already exists.")
    order = body.get("displayOrder", -1)
    groups[name] = PropertyGroup(name, label, order if isinstance(order, int) else -1)
    return _created(render_group(groups[name]), f"{otype.name}/groups/{name}")


def list_owners(ctx: Ctx) -> Response:
    ctx.require(OWNER_SCOPES)
    args = ctx.request.args
    limit = query_int(args, "limit", 100, minimum=1, maximum=500)
    archived, email = query_bool(args, "archived"), args.get("email")
    owners = [o for o in ctx.portal.owners
              if o.archived == archived and (not email or o.email == email)]
    return json_response(id_page(owners, args.get("after"), limit, "/crm/v3/owners/", render_owner))


def pipeline_type(ctx: Ctx, name: str) -> ObjectType:
    otype = type_of(name)
    if otype.name != "deals":
        fail(400, "VALIDATION_ERROR", f"Object type {otype.name} does not support pipelines")
    ctx.require(otype.schema_read_scopes)
    return otype


def property_from_request(body: JsonObject, groups: Mapping[str, PropertyGroup],
                          now_ms: int) -> PropertyDef:
    """A custom property from a `PropertyCreate` body, or CrmError 400."""
    missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
    if missing:
        fail(400, "VALIDATION_ERROR", f"Missing required fields: {missing}")
    name = str(body["name"])
    if not PROPERTY_NAME.match(name):
        fail(400, "VALIDATION_ERROR",
             f"Property name '{name}' must start with a lower case letter and contain only "
             "lower case letters, digits and _")
    if body["type"] not in PROPERTY_TYPES or body["fieldType"] not in FIELD_TYPES:
        fail(400, "VALIDATION_ERROR",
             f"Invalid type {body['type']} / fieldType {body['fieldType']}")
    if body["groupName"] not in groups:
        fail(400, "VALIDATION_ERROR", f"Property group {body['groupName']} does not exist")
    options = body.get("options") or []
    if body["type"] == "enumeration" and not options:
        fail(400, "VALIDATION_ERROR", "Enumeration properties need options")
    options = [option(str(o["value"]), str(o["label"]), int(o.get("displayOrder", i)))
               for i, o in enumerate(options)]
    return PropertyDef(name, str(body["label"]), str(body["type"]), str(body["fieldType"]),
                       str(body["groupName"]), description=str(body.get("description") or ""),
                       options=options, hubspot_defined=False,
                       has_unique_value=bool(body.get("hasUniqueValue", False)),
                       hidden=bool(body.get("hidden", False)),
                       form_field=bool(body.get("formField", False)),
                       display_order=int(body.get("displayOrder", -1)), created_ms=now_ms,
                       updated_ms=now_ms)


_PROPERTIES = "/crm/v3/properties/<object_type>"
ROUTES = [
    *routes("/crm/v3/pipelines/<object_type>", GET=list_pipelines),
    *routes("/crm/v3/pipelines/<object_type>/<pipeline_id>", GET=get_pipeline),
    *routes(f"{_PROPERTIES}/groups", GET=list_groups, POST=create_group),
    *routes(f"{_PROPERTIES}/batch/create", POST=batch_create_properties),
    *routes(f"{_PROPERTIES}/batch/read", POST=batch_read_properties),
    *routes(_PROPERTIES, GET=list_properties, POST=create_property),
    # owners_api.get_page calls "/crm/v3/owners/" (trailing slash)
    *routes("/crm/v3/owners/", GET=list_owners),
    *routes("/crm/v3/owners", GET=list_owners),
]
