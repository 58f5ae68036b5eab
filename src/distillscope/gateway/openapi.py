"""The OpenAPI document of one gateway, describing the server as it really answers.

FastAPI's generated document promises a 422 that the gateway never sends and none of the
errors it does send. :func:`describe_server` rewrites it once per app:

* every operation lists the statuses the gateway answers with (400, 401, 403, 404, 413, 429,
  5xx for the API; 400/401/403/404/409/503 for the admin API), each with the OpenAI-style
  :data:`ERROR_SCHEMA` body; 422 and its schemas are gone;
* the caps of the app's :class:`~distillscope.gateway.state.GatewayConfig` become ``maximum`` /
  ``maxItems`` / ``maxLength`` of the request fields (``n`` × prompts included), so a request the
  schema allows is one the server accepts;
* with a backend that generates locally (the watermarked teacher, the stub) the fields it
  refuses are narrowed: no ``tool`` role, ``logit_bias`` empty, no ``suffix``, ``best_of`` ≤ 1;
* SSE streams are declared as ``text/event-stream``, ``/metrics`` as text.
"""

from __future__ import annotations

import copy
from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorResponse", "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["message", "type", "param", "code"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}},
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}

_API_ERRORS = {
    "400": "Invalid request: malformed JSON, a wrong field (``param`` names it), a cap exceeded (max_tokens, "
           "choices, prompt characters).",
    "401": "No API key, or an unknown one.",
    "403": "The key or its account is suspended or revoked.",
    "404": "Unknown model or route.",
    "413": "Request body larger than the gateway allows (refused before it is parsed).",
    "429": "A per-key limit; ``retry-after`` and ``x-ratelimit-*`` headers say when to retry.",
    "500": "Internal error (no details).",
    "502": "The upstream failed (proxy mode).",
    "503": "The request log, the rate limiter or the backend is unavailable; nothing was served.",
}
_ADMIN_ERRORS = {
    "400": "Invalid body or parameter (``param`` names it).",
    "401": "No admin token, or a wrong one.",
    "403": "The admin API is disabled (no admin token configured), or this address is blocked after too many "
           "wrong admin tokens (``retry-after`` says for how long).",
    "404": "Unknown account or key.",
    "409": "The account exists already, or a revoked key or account cannot change state.",
    "503": "The gateway database is unavailable.",
}


def _errors(table: dict[str, str], statuses: tuple[str, ...]) -> dict[str, Any]:
    return {s: {"description": table[s], "content": {"application/json": {"schema": _ERROR_REF}}}
            for s in statuses}


def _nullable_prop(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The non-null branch of a property (``anyOf: [X, null]`` -> X), or the property itself."""
    prop = schema["properties"][name]
    for branch in prop.get("anyOf", ()):
        if branch.get("type") != "null":
            return branch
    return prop


def _set_caps(schemas: dict[str, Any], config: Any) -> None:
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        body = schemas[name]
        for field in ("max_tokens", "max_completion_tokens"):
            if field in body["properties"]:
                _nullable_prop(body, field)["maximum"] = config.max_tokens_cap
        body["properties"]["n"]["maximum"] = config.max_choices
    chat = schemas["ChatCompletionRequest"]
    message = schemas["ChatMessage"]["properties"]["content"]["anyOf"][0]
    for prop in (message, schemas["TextPart"]["properties"]["text"]):
        prop["maxLength"] = config.max_prompt_chars
    chat["properties"]["messages"]["description"] = (
        f"The conversation; all text together at most {config.max_prompt_chars} characters (400 otherwise).")
    completion = schemas["CompletionRequest"]
    prompt = completion["properties"]["prompt"]
    prompt["anyOf"][0]["maxLength"] = config.max_prompt_chars
    prompt["anyOf"][1]["maxItems"] = config.max_choices
    prompt["anyOf"][1]["items"]["maxLength"] = config.max_prompt_chars
    # n × number of prompts <= max_choices, as one JSON Schema: one branch per list length.
    branches = [{"properties": {"prompt": {"type": "string"}}}]
    for k in range(1, config.max_choices + 1):
        branches.append({"properties": {"prompt": {"type": "array", "minItems": k, "maxItems": k},
                                        "n": {"maximum": config.max_choices // k}}})
    completion["anyOf"] = branches
    completion["description"] = (completion.get("description", "") +
                                 f" At most {config.max_choices} choices: n × number of prompts.").strip()


def _narrow_for_local(schemas: dict[str, Any]) -> None:
    role = schemas["ChatMessage"]["properties"]["role"]
    role["enum"] = [r for r in role["enum"] if r != "tool"]
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        body = schemas[name]
        _nullable_prop(body, "logit_bias")["maxProperties"] = 0
    completion = schemas["CompletionRequest"]["properties"]
    _nullable_prop(schemas["CompletionRequest"], "suffix")["maxLength"] = 0
    _nullable_prop(schemas["CompletionRequest"], "best_of")["maximum"] = 1
    completion["best_of"]["description"] = "The local teacher serves best_of = 1 only."


def describe_server(spec: dict[str, Any], config: Any, *, generates_locally: bool) -> dict[str, Any]:
    """``spec`` (FastAPI's document) rewritten to describe this gateway (see the module doc)."""
    spec = copy.deepcopy(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["ErrorResponse"] = ERROR_SCHEMA
    for name in ("ChatCompletionRequest", "CompletionRequest"):  # keys other than token ids are refused
        _nullable_prop(schemas[name], "logit_bias")["additionalProperties"] = False
    _set_caps(schemas, config)
    if generates_locally:
        _narrow_for_local(schemas)
    for path, operations in spec.get("paths", {}).items():
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            if path.startswith("/v1/"):
                statuses = ("400", "401", "403", "404", "413", "429", "500", "502", "503") if method == "post" \
                    else ("401", "403", "404", "429", "500", "503")
                responses.update(_errors(_API_ERRORS, statuses))
                if method == "post":
                    ok = responses["200"].setdefault("content", {})
                    ok["text/event-stream"] = {}  # chunk objects, then the [DONE] sentinel
                    responses["200"]["description"] = "The completion (JSON), or with stream=true its SSE events."
            elif path.startswith("/admin/"):
                statuses = ("400", "401", "403", "404", "409", "503")
                responses.update(_errors(_ADMIN_ERRORS, statuses))
            elif path == "/metrics":
                responses["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
            elif path == "/readyz":
                responses["503"] = {"description": "Not ready: `failing` names what fails.",
                                    "content": {"application/json": {"schema": {"type": "object"}}}}
    return spec


def install_openapi(app: Any, config: Any, *, generates_locally: bool) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) return :func:`describe_server`'s document."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description,
                               routes=app.routes)
            app.openapi_schema = describe_server(spec, config, generates_locally=generates_locally)
        return app.openapi_schema

    app.openapi = openapi
