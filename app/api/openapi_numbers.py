"""How the OpenAPI spec renders ``int | float`` (``app.schemas.Money``): one JSON number.

Litestar writes the union as ``oneOf: [integer, number]``, which no integer satisfies
(``22900`` and ``1905.0`` match both branches, and oneOf wants exactly one): every
client that validates against the spec would reject every price.
"""

from __future__ import annotations

from typing import Any, Union, get_origin

from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition


class NumberSchemaPlugin(OpenAPISchemaPlugin):
    """``int | float`` as ``{"type": "number"}`` (optional ones get their null as usual)."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return False  # decided per field below: the union has no type of its own

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        # typing.Union only: Litestar cannot key a types.UnionType (``int | float``) here.
        annotation = field_definition.annotation
        return get_origin(annotation) is Union and set(field_definition.args) == {int, float}

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        return Schema(type=OpenAPIType.NUMBER)
