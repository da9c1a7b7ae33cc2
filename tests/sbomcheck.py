"""Independent checkers for our SBOMs: SPDX's own `spdx-tools` (parser + 2.3 validator) and
`cyclonedx-python-lib`'s strict JSON-schema validator for CycloneDX 1.5."""

from __future__ import annotations

import json

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.error import SPDXParsingError
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document


def spdx_problems(raw: bytes | str) -> list[str]:
    """Everything spdx-tools objects to in an SPDX 2.3 JSON document (empty: valid)."""
    try:
        document = JsonLikeDictParser().parse(json.loads(raw))
    except SPDXParsingError as e:
        return [f"parse: {m}" for m in e.get_messages()]
    return [m.validation_message for m in validate_full_spdx_document(document, "SPDX-2.3")]


def cyclonedx_problem(raw: bytes | str) -> str | None:
    """cyclonedx-python-lib's strict schema validation of a CycloneDX 1.5 JSON BOM (None: valid)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    return None if error is None else str(error)
