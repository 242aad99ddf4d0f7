"""The REST API v1 (django-ninja): tenant secret-key auth, JSON errors and pagination.

Domain routers (agents, tools, realtime, usage) are attached in koe/urls.py. Every error answers
``{"error": {"type", "code", "message"}}``, with ``"fields": {name: [messages]}`` added
when the request did not validate.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, TypeVar

from django.core.exceptions import (
    NON_FIELD_ERRORS,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import MaxLengthValidator
from django.db import IntegrityError, models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import URLPattern, URLResolver
from django.views.decorators.csrf import csrf_exempt
from ninja import Field, NinjaAPI, Schema, Swagger
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer
from ninja.types import DictStrAny

from tenancy.models import ApiKey, Tenant

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=models.Model)

# Default of the fields of write schemas: a field left out keeps the model's default on
# create and its value on PATCH (read with model_dump(exclude_unset=True)). Typed Any so a
# field can be declared `name: str = Field(OMITTED)` and still refuse an explicit null.
OMITTED: Any = None

# The whole request body is named like this in "fields" when it is not an object at all.
BODY_FIELD = "body"

# Objects and arrays nested deeper are refused: OpenAI allows function schemas 10 levels
# of nesting (about 20 in JSON), and jsonschema's recursive checks give out near 160.
MAX_JSON_DEPTH = 32

# Offsets beyond this are refused: the databases' integers end near 2**63, and a bigger
# OFFSET is a database error rather than an empty page.
MAX_OFFSET = 2**31 - 1

ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    429: "rate_limit_error",
}
ERROR_CODES = {
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    429: "rate_limited",
}


class SecretKeyAuth(HttpBearer):
    openapi_description = "A tenant secret key (sk_...) from the dashboard's API keys page."

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        key = ApiKey.authenticate(token)
        if key is not None:
            request.tenant = key.tenant  # type: ignore[attr-defined]
            request.api_key = key  # type: ignore[attr-defined]
        return key


class StrictJSONParser(Parser):
    """JSON as the RFC has it (no NaN, Infinity or NUL characters), nested at most 32 deep.

    Python's json module accepts the first three; NaN cannot be stored in a JSON column or
    pass a range check, PostgreSQL refuses NUL in text. Deep nesting would exhaust the
    recursion of the validators downstream (jsonschema's among them). Refused here, they
    are a 400 like any malformed body instead of a database error or a crash.
    """

    def parse_body(self, request: HttpRequest) -> DictStrAny:
        data = json.loads(request.body, parse_constant=_refuse_constant, parse_float=_finite_float)
        _check_values(data, depth=1)
        return data  # type: ignore[no-any-return]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def _check_values(data: Any, depth: int) -> None:
    if isinstance(data, str):
        if "\x00" in data:
            raise ValueError("strings may not contain NUL characters")
        return
    if not isinstance(data, dict | list):
        return
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"objects and arrays may not be nested more than {MAX_JSON_DEPTH} deep")
    if isinstance(data, dict):
        for key, value in data.items():
            _check_values(key, depth + 1)
            _check_values(value, depth + 1)
    else:
        for item in data:
            _check_values(item, depth + 1)


api = NinjaAPI(
    title="Koe API",
    version="1",
    description="Manage a tenant's voice agents and tools. Authenticate with a secret key: "
    "`Authorization: Bearer sk_...`. Errors answer "
    '`{"error": {"type", "code", "message", "fields"}}`.',
    auth=SecretKeyAuth(),
    parser=StrictJSONParser(),
    # Swagger UI from /static/ninja/; its default would also ask validator.swagger.io.
    docs=Swagger(settings={"validatorUrl": None}),
    urls_namespace="api",
)


class InvalidRequest(Exception):
    """The request is well-formed JSON but its values are refused, field by field."""

    def __init__(self, fields: Mapping[str, list[str]], message: str = "") -> None:
        self.fields = {name: list(messages) for name, messages in fields.items()}
        self.message = message or "The request has invalid fields: " + ", ".join(self.fields)
        super().__init__(self.message)


class ErrorDetail(Schema):
    type: str
    code: str
    message: str
    fields: dict[str, list[str]] | None = None


class ErrorResponse(Schema):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int, type[ErrorResponse]]:
    """OpenAPI responses for an operation's errors; every operation may also answer 401."""
    return {status: ErrorResponse for status in (401, *statuses)}


class Pagination(Schema):
    limit: int = Field(20, ge=1, le=100, description="How many items to return (1-100).")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="How many items to skip.")


def request_tenant(request: HttpRequest) -> Tenant:
    """The tenant whose secret key authenticated this request (set by SecretKeyAuth)."""
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    return tenant


def error_response(
    request: HttpRequest,
    status: int,
    message: str,
    *,
    code: str | None = None,
    error_type: str | None = None,
    fields: Mapping[str, list[str]] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {
        "type": error_type or ERROR_TYPES.get(status, "invalid_request_error"),
        "code": code or ERROR_CODES.get(status, "invalid_request"),
        "message": message,
    }
    if fields is not None:
        body["fields"] = dict(fields)
    response = api.create_response(request, {"error": body}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="koe"'
    return response


def page(queryset: models.QuerySet[ModelT], pagination: Pagination) -> tuple[list[ModelT], int]:
    """One page of an (already ordered) queryset and the total count."""
    items = list(queryset[pagination.offset : pagination.offset + pagination.limit])
    return items, queryset.count()


def field_errors(
    error: DjangoValidationError, field_names: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """A Django ValidationError as {API field name: [messages]}.

    Model field names are renamed through ``field_names``; a (tenant, <field>) unique
    constraint, which Django reports as a non-field error, is put on <field>, since
    that is the value the client must change.
    """
    field_names = field_names or {}
    if not hasattr(error, "error_dict"):
        return {NON_FIELD_ERRORS: [str(message) for message in error.messages]}
    fields: dict[str, list[str]] = {}
    for model_field, errors in error.error_dict.items():
        for item in errors:
            target = model_field
            message = " ".join(item.messages)
            unique_check = (item.params or {}).get("unique_check")
            if (
                model_field == NON_FIELD_ERRORS
                and item.code == "unique_together"
                and unique_check
                and "tenant" in unique_check
                and len(unique_check) == 2
            ):
                target = next(name for name in unique_check if name != "tenant")
                message = "This name is already taken in this tenant: choose another."
            fields.setdefault(field_names.get(target, target), []).append(message)
    return fields


def full_clean_or_raise(
    instance: models.Model,
    field_names: Mapping[str, str] | None = None,
    other_errors: Mapping[str, list[str]] | None = None,
) -> None:
    """Validate a model instance; raise InvalidRequest with API field names on failure."""
    fields = {name: list(messages) for name, messages in (other_errors or {}).items()}
    try:
        instance.full_clean()
    except DjangoValidationError as error:
        for name, messages in field_errors(error, field_names).items():
            fields.setdefault(name, []).extend(messages)
    for name, messages in _unchecked_length_errors(instance, field_names).items():
        fields.setdefault(name, []).extend(messages)
    if fields:
        raise InvalidRequest(fields)


def _unchecked_length_errors(
    instance: models.Model, field_names: Mapping[str, str] | None
) -> dict[str, list[str]]:
    # A TextField's max_length is enforced by model forms only, not by full_clean(): the
    # dashboard keeps it, the API would not without this.
    field_names = field_names or {}
    errors: dict[str, list[str]] = {}
    for field in instance._meta.concrete_fields:
        if not field.max_length or any(
            isinstance(validator, MaxLengthValidator) for validator in field.validators
        ):
            continue
        value = field.value_from_object(instance)
        if not isinstance(value, str):
            continue
        try:
            MaxLengthValidator(field.max_length)(value)
        except DjangoValidationError as error:
            errors[field_names.get(field.name, field.name)] = list(error.messages)
    return errors


def _ninja_field_name(location: list[Any] | tuple[Any, ...]) -> str:
    # loc is ("body", "<parameter>", field, ...) or ("query", field); the parameter name is
    # internal to the view, so it is dropped.
    parts = list(location)
    if parts and parts[0] == "body":
        parts = parts[2:]
    elif parts and parts[0] in ("query", "path", "header", "cookie", "form"):
        parts = parts[1:]
    return ".".join(str(part) for part in parts) or BODY_FIELD


@api.exception_handler(AuthenticationError)
def _authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(
        request,
        401,
        "Missing, malformed, unknown or revoked API key: send "
        "'Authorization: Bearer sk_...' with an active secret key.",
    )


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, 404, str(exc) or "Not found.")


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
        # ninja says only "Cannot parse request body" outside DEBUG; the parser's reason
        # (a json or StrictJSONParser message, which quotes nothing secret) helps more.
        reason = str(exc.__cause__) if isinstance(exc.__cause__, ValueError) else ""
        message = "The request body is not valid JSON" + (f": {reason}." if reason else ".")
        return error_response(request, 400, message, code="invalid_json")
    return error_response(request, exc.status_code, str(exc))


@api.exception_handler(NinjaValidationError)
def _request_validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    fields: dict[str, list[str]] = {}
    for error in exc.errors:
        name = _ninja_field_name(error.get("loc", ()))
        fields.setdefault(name, []).append(str(error.get("msg", "Invalid value.")))
    return error_response(
        request,
        400,
        "The request has invalid fields: " + ", ".join(fields),
        code="invalid_fields",
        fields=fields,
    )


@api.exception_handler(InvalidRequest)
def _invalid_request(request: HttpRequest, exc: InvalidRequest) -> HttpResponse:
    return error_response(request, 400, exc.message, code="invalid_fields", fields=exc.fields)


@api.exception_handler(DjangoValidationError)
def _model_validation_error(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    fields = field_errors(exc)
    return error_response(
        request,
        400,
        "The request has invalid fields: " + ", ".join(fields),
        code="invalid_fields",
        fields=fields,
    )


@api.exception_handler(SuspiciousOperation)
def _suspicious_request(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    # Django's own answer would be a bare 400 page; keep the API's JSON shape.
    if isinstance(exc, RequestDataTooBig):
        return error_response(request, 413, "The request body is too large.", code="too_large")
    logger.warning("Suspicious request %s %s: %s", request.method, request.path, exc)
    return error_response(request, 400, "The request was refused.", code="bad_request")


@api.exception_handler(IntegrityError)
def _conflict(request: HttpRequest, exc: IntegrityError) -> HttpResponse:
    # Validation checks the constraints first, so this is a concurrent change that won.
    logger.warning("Integrity error in %s %s: %s", request.method, request.path, exc)
    return error_response(
        request,
        409,
        "The change conflicts with another one made at the same time; retry the request.",
        code="conflict",
    )


@api.exception_handler(Exception)
def _unexpected_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    # A bug, not bad input: log it with its traceback and keep the JSON shape.
    logger.exception("Unhandled error in %s %s", request.method, request.path)
    return error_response(
        request,
        500,
        "Something went wrong on our side.",
        code="internal_error",
        error_type="api_error",
    )


@csrf_exempt  # an API client has no CSRF token: a POST must get the JSON 404 too
def not_found_view(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Unknown paths under /v1/ answer JSON too (routed last in koe/urls.py)."""
    return _plain_error(404, f"No API endpoint {request.path}.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponseBase:
    """CSRF_FAILURE_VIEW: under /v1/ an OpenAI-style JSON error, elsewhere Django's page."""
    if request.path.startswith("/v1/") or request.path == "/v1":
        return _plain_error(403, "This request needs a CSRF token (or an API key).")
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason)


def api_urls() -> tuple[list[URLPattern | URLResolver], str, str]:
    """The API's URL patterns, with ninja's plain-text 405 and HTML 404 answers in JSON."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        # ninja reverses "api-root" to find the API's prefix, so the route stays; its
        # view raises Http404 outside any operation, which Django would answer in HTML.
        if isinstance(pattern, URLPattern) and pattern.name == "api-root":
            pattern.callback = not_found_view
    return [_with_json_405(pattern) for pattern in patterns], app_name, namespace


def _with_json_405(pattern: URLPattern | URLResolver) -> URLPattern | URLResolver:
    if isinstance(pattern, URLPattern):
        pattern.callback = _json_method_not_allowed(pattern.callback)
    else:
        for child in pattern.url_patterns:
            _with_json_405(child)
    return pattern


def _json_method_not_allowed(view: Callable[..., HttpResponseBase]) -> Callable[..., Any]:
    @wraps(view)  # keeps csrf_exempt, which ninja sets on its views
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and "json" not in response.get("Content-Type", ""):
            allowed = response.get("Allow", "")
            response = _plain_error(405, f"Use one of: {allowed}.")
            response["Allow"] = allowed
        return response

    return wrapper


def _plain_error(status: int, message: str) -> JsonResponse:
    # Outside an operation, so without api.create_response.
    return JsonResponse(
        {
            "error": {
                "type": ERROR_TYPES.get(status, "invalid_request_error"),
                "code": ERROR_CODES.get(status, "invalid_request"),
                "message": message,
            }
        },
        status=status,
    )
