"""Registered wire formats and the schema registry: where it is, how long it may take, what a
writer's schema may cost (the limits a hostile registry or producer meets)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, FilePath, SecretStr, model_validator

WireFormat = Literal["json", "json-schema", "avro", "protobuf"]


class SchemaRegistry(BaseModel):
    """The input's and outputs' wire formats, and the registry the registered ones need."""

    input_format: WireFormat = Field(
        "json",
        description="Input values: json, or json-schema, avro or protobuf in the Confluent wire format "
        "(a registry's).",
    )
    output_format: WireFormat = Field(
        "json",
        description="Predictions and provenance: json, or json-schema, avro or protobuf (registered as "
        "<topic>-value).",
    )
    schema_registry_url: str | None = Field(
        None, description="Schema registry (Confluent API) URL; required by the registered formats."
    )
    schema_registry_basic_auth_user_info: SecretStr | None = Field(
        None, description="Schema registry basic auth, as user:password."
    )
    schema_registry_ssl_ca_location: FilePath | None = Field(
        None, description="PEM file of the CA certificates the registry's HTTPS is checked against."
    )
    schema_registry_ssl_certificate_location: FilePath | None = Field(
        None, description="PEM client certificate for the registry (with the key location)."
    )
    schema_registry_ssl_key_location: FilePath | None = Field(
        None, description="PEM private key of that certificate."
    )
    schema_registry_timeout_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Longest a registry request may take, answer included; a lookup past it ends the worker "
        "without committing (a restart asks again), at start-up it stops start-up. No retries.",
    )
    schema_registry_miss_ttl_s: float = Field(
        60.0,
        ge=0,
        description="How long a schema id the registry does not know is remembered as unknown (its events "
        "dead-lettered without asking); after that the registry is asked again.",
    )
    schema_registry_lookups_per_s: float = Field(
        10.0,
        gt=0,
        description="Most registry lookups of schema ids not in the cache, per second (as many at once); "
        "an event naming such an id beyond that is dead-lettered.",
    )
    schema_cache_size: int = Field(
        1_000,
        ge=1,
        description="Most schema ids (known or not) held in the cache; the least recently used go first.",
    )
    schema_cache_fields: int = Field(
        10_000,
        ge=1,
        description="Most fields of the writer schemas held in the cache, all told (an unknown id: one).",
    )
    schema_max_bytes: int = Field(
        65_536,
        ge=1_024,
        description="Writer schemas larger than this are refused: their events dead-lettered.",
    )
    schema_max_fields: int = Field(
        1_000,
        ge=1,
        description="Writer schemas with more fields are refused (each JSON object counts: an Avro field "
        "or type, a JSON Schema property or subschema): their events dead-lettered.",
    )
    schema_max_depth: int = Field(
        32,
        ge=4,
        description="Writer schemas nesting objects and arrays deeper than this are refused: their events "
        "dead-lettered.",
    )

    @model_validator(mode="after")
    def _formats_have_a_registry(self) -> Self:
        """A registered format needs the registry's address."""
        for name in ("input_format", "output_format"):
            if getattr(self, name) != "json" and not self.schema_registry_url:
                raise ValueError(
                    f"STREAMSCORE_{name.upper()}={getattr(self, name)} needs STREAMSCORE_SCHEMA_REGISTRY_URL"
                )
        return self

    @model_validator(mode="after")
    def _cache_holds_the_largest_schema(self) -> Self:
        """The cache must hold the largest schema allowed."""
        if self.schema_cache_fields < self.schema_max_fields:
            raise ValueError(
                f"STREAMSCORE_SCHEMA_CACHE_FIELDS={self.schema_cache_fields} cannot hold a schema of "
                f"STREAMSCORE_SCHEMA_MAX_FIELDS={self.schema_max_fields} fields: raise it, or lower the other"
            )
        return self
