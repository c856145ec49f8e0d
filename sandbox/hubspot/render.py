"""HubSpot's JSON for records, properties, pipelines, owners and webhook settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sandbox.hubspot.errors import standard_error
from sandbox.hubspot.schema import (
    ASSOCIATION_TYPES, OBJECT_TYPES, JsonObject, ObjectType, Pipeline, PropertyDef, PropertyGroup,
    id_key, iso_ms, option,
)
from sandbox.hubspot.state import CrmObject, HistoryEntry, Links, Owner, PortalCrm


def selected_properties(otype: ObjectType, defs: Mapping[str, PropertyDef],
                        requested: Sequence[str]) -> list[str]:
    """What a read returns: the defaults, or the requested ones that exist plus `always`."""
    if not requested:
        return sorted(otype.defaults)
    return sorted({n for n in requested if n in defs} | set(otype.always))


def render_object(portal: PortalCrm, obj: CrmObject, requested: Sequence[str] = (), *,
                  with_history: Sequence[str] = (),
                  associations: Sequence[ObjectType] = ()) -> JsonObject:
    """`SimplePublicObject(WithAssociations)`; unset requested properties are null."""
    otype = OBJECT_TYPES[obj.object_type]
    names = selected_properties(otype, portal.properties_of(otype), requested)
    body: JsonObject = {"id": obj.id,
                        "properties": {name: obj.properties.get(name) for name in names},
                        **_fields(obj, createdAt="created_ms", updatedAt="updated_ms",
                                  archived="archived")}
    if obj.archived and obj.archived_ms is not None:
        body["archivedAt"] = iso_ms(obj.archived_ms)
    if with_history:
        body["propertiesWithHistory"] = {
            name: [_render_history(h) for h in reversed(obj.history.get(name, []))]
            for name in with_history if name in obj.history}
    rendered = _v3_associations(portal, obj, otype, associations)
    if rendered:
        body["associations"] = rendered
    return body


def _render_history(entry: HistoryEntry) -> JsonObject:
    body: JsonObject = {"value": entry.value if entry.value is not None else "",
                        "timestamp": iso_ms(entry.timestamp_ms), "sourceType": entry.source_type}
    if entry.source_id is not None:
        body["sourceId"] = entry.source_id
    return body


def _v3_associations(portal: PortalCrm, obj: CrmObject, otype: ObjectType,
                     targets: Sequence[ObjectType]) -> JsonObject:
    rendered: JsonObject = {}
    for target in targets:
        links = portal.links(otype, obj.id, target)
        results = [{"id": to_id, "type": ASSOCIATION_TYPES[type_id].v3_name}
                   for to_id in sorted(links, key=id_key) for type_id in sorted(links[to_id])]
        if results:  # HubSpot leaves out types with no associations
            rendered[target.v3_association_key] = {"results": results}
    return rendered


def render_association_type(type_id: int) -> JsonObject:
    kind = ASSOCIATION_TYPES[type_id]
    return {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": kind.label}


def render_property(defn: PropertyDef, portal: PortalCrm, otype: ObjectType) -> JsonObject:
    options = defn.options
    if otype.name == "deals" and defn.name == "pipeline":
        options = [option(p.id, p.label, p.display_order) for p in portal.pipelines]
    elif otype.name == "deals" and defn.name == "dealstage":
        options = [option(s.id, s.label, s.display_order)
                   for p in portal.pipelines for s in p.stages]
    body: JsonObject = {
        **_fields(defn, name="name", label="label", type="type", fieldType="field_type",
                  description="description", groupName="group_name"),
        "options": options,
        **_fields(defn, displayOrder="display_order", calculated="calculated",
                  externalOptions="external_options", hasUniqueValue="has_unique_value",
                  hidden="hidden", formField="form_field"),
        "archived": False, **_fields(defn, createdAt="created_ms", updatedAt="updated_ms"),
        "modificationMetadata": {"archivable": not defn.hubspot_defined,
                                 "readOnlyDefinition": defn.hubspot_defined,
                                 "readOnlyValue": defn.read_only},
    }
    if defn.hubspot_defined:
        body["hubspotDefined"] = True
    if defn.referenced_object_type:
        body["referencedObjectType"] = defn.referenced_object_type
    return body


def _fields(record: object, **names: str) -> JsonObject:
    """HubSpot's keys -> the record's attributes (timestamps in ms become ISO 8601)."""
    return {key: iso_ms(getattr(record, attr)) if attr.endswith("_ms") else getattr(record, attr)
            for key, attr in names.items()}


def render_group(group: PropertyGroup) -> JsonObject:
    return _fields(group, name="name", label="label", displayOrder="display_order",
                   archived="archived")


_BASICS = {"id": "id", "label": "label", "displayOrder": "display_order",
           "createdAt": "created_ms", "updatedAt": "updated_ms"}


def render_pipeline(pipeline: Pipeline) -> JsonObject:
    return {**_fields(pipeline, **_BASICS), "archived": False, "stages": [
        {**_fields(s, **_BASICS), "archived": False,
         # HubSpot sends deal-stage metadata values as strings
         "metadata": {"isClosed": "true" if s.is_closed else "false",
                      "probability": s.probability},
         "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}
        for s in pipeline.stages
    ]}


def render_owner(owner: Owner) -> JsonObject:
    body = _fields(owner, id="id", email="email", firstName="first_name",
                   lastName="last_name", userId="user_id", userIdIncludingInactive="user_id")
    return {**body, "type": "PERSON", **_fields(owner, createdAt="created_ms",
                                                 updatedAt="created_ms", archived="archived"),
            "teams": []}


def v4_targets(links: Links) -> list[JsonObject]:
    return [{"toObjectId": to_id,
             "associationTypes": [render_association_type(t) for t in sorted(links[to_id])]}
            for to_id in sorted(links, key=id_key)]


def no_associations(source: ObjectType, target: ObjectType, from_id: str) -> JsonObject:
    return standard_error(
        "OBJECT_NOT_FOUND", f"No {target.singular} is associated with {source.singular} {from_id}.",
        subCategory="crm.associations.NO_ASSOCIATIONS_FOUND", context={"fromObjectId": [from_id]})
