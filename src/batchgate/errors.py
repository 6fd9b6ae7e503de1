"""Two exception roots: errors, which reach a caller, and signals, which steer a worker.

An error says what went wrong for someone who asked; it knows its HTTP status and OpenAI type.
A signal says why a piece of work must change course (stop writing, give up a line, fail the batch);
it is caught inside the worker and never rendered, so it is not a BatchgateError.

    BatchgateError                 500 server_error
    ├── ConfigError                bad settings or upstream config (never reaches HTTP)
    ├── InvalidRequest             400 invalid_request_error
    │   ├── PayloadTooLarge        413
    │   ├── RequestTimeout         408 a client sent its request's head or body too slowly
    │   ├── UnsupportedEncoding    415 a Content-Encoding the server cannot decode
    │   └── HeaderTooLarge         431 a request line or headers past the parser's limits
    ├── Unauthorized               401 authentication_error
    ├── NotFound                   404 invalid_request_error
    ├── Conflict                   409 invalid_request_error (wrong state for the action)
    ├── Unavailable                503 server_error (the database cannot be reached, too many connections)
    │   └── InsufficientStorage    507 insufficient_storage (the disk or database is full; deletes free space)
    ├── UpstreamFailure            an upstream could not be reached or did not speak HTTP (a line's error)
    └── EngineMissing              503: a built-in local model's package is not installed

    Signal                         control flow inside the worker (and the store that fences it)
    ├── LeaseLost                  a worker lost its lease on a batch or shard; it must stop writing
    ├── InputMissing               a batch's input file vanished from the store or the blobs
    └── Abandoned                  a request given up without an answer because its run stopped

Each error knows its HTTP status and OpenAI error type, so the API layer renders
every one of them the same way: {"error": {"message", "type", "param", "code"}}.
A signal carries a message and a code, which a batch that ends because of it may record.
"""

from __future__ import annotations


class BatchgateError(Exception):
    status = 500
    type = "server_error"
    default_code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code

    def to_wire(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class ConfigError(BatchgateError):
    default_code = "invalid_config"


class InvalidRequest(BatchgateError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    status = 413
    default_code = "payload_too_large"


class RequestTimeout(InvalidRequest):
    status = 408
    default_code = "request_timeout"


class UnsupportedEncoding(InvalidRequest):
    status = 415
    default_code = "unsupported_content_encoding"


class HeaderTooLarge(InvalidRequest):
    status = 431
    default_code = "request_header_too_large"


class Unauthorized(BatchgateError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class NotFound(BatchgateError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class Conflict(BatchgateError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class Unavailable(BatchgateError):
    status = 503
    default_code = "service_unavailable"


STORAGE_FULL = (
    "The server's storage is full, so nothing new can be stored. Delete files you no longer need "
    "(DELETE /v1/files/{file_id}) to free space, then try again."
)


class InsufficientStorage(Unavailable):
    """A write failed for lack of space; passing, like Unavailable: workers pause and carry on once there is room."""

    status = 507
    default_code = "insufficient_storage"

    def __init__(self, message: str = STORAGE_FULL, *, param: str | None = None, code: str | None = None):
        super().__init__(message, param=param, code=code)


class UpstreamFailure(BatchgateError):
    default_code = "upstream_unreachable"


class EngineMissing(BatchgateError):
    status = 503
    default_code = "local_model_unavailable"


class Signal(Exception):
    """Not an error for a caller: a reason for the worker to change course, caught where that happens."""

    default_code = "signal"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.code = self.default_code


class LeaseLost(Signal):
    default_code = "lease_lost"


class InputMissing(Signal):
    default_code = "input_file_missing"


class Abandoned(Signal):
    default_code = "abandoned"
