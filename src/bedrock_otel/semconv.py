"""Attribute names and values: the one place where the telemetry contract's strings are spelled.

Everything else imports these constants; see docs/telemetry.md for the contract they implement.
"""

from __future__ import annotations

# -- shared attributes ------------------------------------------------------------------------------
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
CLOUD_REGION = "cloud.region"
INFERENCE_PROFILE = "aws.bedrock.inference_profile"
OPERATION_NAME = "gen_ai.operation.name"
TOKEN_TYPE = "gen_ai.token.type"
ERROR_TYPE = "error.type"
HTTP_STATUS = "http.response.status_code"

# -- bedrock_otel attributes ------------------------------------------------------------------------
EVENT_TYPE = "anthropic.stream.event.type"
MALFORMED_REASON = "anthropic.stream.malformed.reason"
ERROR_SOURCE = "anthropic.stream.error.source"
RATE_LIMIT_SOURCE = "anthropic.rate_limit.source"
OUTCOME = "anthropic.stream.outcome"
RATE_LIMIT_RESOURCE = "anthropic.rate_limit.resource"
EVENTS_PREFIX = "anthropic.stream.events."
REQUEST_ID = "anthropic.request.id"
ERROR_MESSAGE = "anthropic.stream.error.message"
RETRY_RESULT = "anthropic.stream.retry.result"
RETRY_ATTEMPT = "anthropic.stream.retry.attempt"
RETRY_DELAY = "anthropic.stream.retry.delay"
STREAM_API = "anthropic.stream.api"
PLATFORM = "anthropic.platform"
INTERNAL_COMPONENT = "bedrock_otel.component"
DROPPED_REASON = "bedrock_otel.dropped.reason"
PRESSURE_REASON = "bedrock_otel.pressure.reason"

# -- span-only GenAI attributes ---------------------------------------------------------------------
REQUEST_STREAM = "gen_ai.request.stream"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT = "gen_ai.usage.input_tokens"
USAGE_OUTPUT = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION = "gen_ai.usage.cache_creation.input_tokens"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
RESEND_COUNT = "http.request.resend_count"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
# request parameters the GenAI conventions recommend, by their Messages API body key (numbers only: no text)
REQUEST_PARAMETERS = (("max_tokens", "gen_ai.request.max_tokens"), ("temperature", "gen_ai.request.temperature"),
                      ("top_p", "gen_ai.request.top_p"), ("top_k", "gen_ai.request.top_k"))
# the same attributes by the key of a Converse call's `inferenceConfig` (Converse has no top_k)
CONVERSE_REQUEST_PARAMETERS = tuple((converse, dict(REQUEST_PARAMETERS)[key]) for converse, key in
                                    (("maxTokens", "max_tokens"), ("temperature", "temperature"), ("topP", "top_p")))
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"

# -- span event names -------------------------------------------------------------------------------
SPAN_EVENT_ERROR_FRAME = "anthropic.stream.error_frame"
SPAN_EVENT_MALFORMED = "anthropic.stream.malformed_event"
SPAN_EVENT_RETRY = "anthropic.stream.retry"
SPAN_EVENT_PRESSURE_WAIT = "bedrock_otel.pressure.wait"  # pressure mode held an attempt back
SPAN_EVENT_PRESSURE_REFUSED = "bedrock_otel.pressure.refused"  # pressure mode refused an attempt
PRESSURE_WAIT_S = "bedrock_otel.pressure.wait_s"

# -- values -----------------------------------------------------------------------------------------
OTHER = "_OTHER"
NONE = "_NONE"
OPERATION_CHAT = "chat"

PROVIDER_ANTHROPIC = "anthropic"
PROVIDER_BEDROCK = "aws.bedrock"
PROVIDER_VERTEX = "gcp.vertex_ai"

# anthropic.platform: which of the SDK's clients (or boto3's bedrock-runtime) made the call. The provider alone
# cannot tell Claude on AWS, Foundry or Google Cloud from the first-party API (the SDK's own tracing names them all
# `anthropic`), nor Bedrock's Anthropic-native endpoint (Mantle) from its runtime API.
PLATFORM_FIRST_PARTY = "first_party"
PLATFORM_BEDROCK = "bedrock"
PLATFORM_BEDROCK_MANTLE = "bedrock_mantle"
PLATFORM_VERTEX = "vertex"
PLATFORM_AWS = "aws"
PLATFORM_FOUNDRY = "foundry"
PLATFORM_GOOGLE_CLOUD = "google_cloud"
PLATFORMS = (PLATFORM_FIRST_PARTY, PLATFORM_BEDROCK, PLATFORM_BEDROCK_MANTLE, PLATFORM_VERTEX, PLATFORM_AWS,
             PLATFORM_FOUNDRY, PLATFORM_GOOGLE_CLOUD)

# anthropic.stream.api: which API streamed (the Anthropic SDK's Messages API, or boto3's bedrock-runtime calls)
API_MESSAGES = "messages"
API_INVOKE = "invoke_model_with_response_stream"
API_CONVERSE = "converse_stream"
APIS = (API_MESSAGES, API_INVOKE, API_CONVERSE)

MESSAGE_START = "message_start"
CONTENT_BLOCK_START = "content_block_start"
CONTENT_BLOCK_DELTA = "content_block_delta"
CONTENT_BLOCK_STOP = "content_block_stop"
MESSAGE_DELTA = "message_delta"
MESSAGE_STOP = "message_stop"
PING = "ping"
ERROR = "error"
EVENT_TYPES = (
    MESSAGE_START,
    CONTENT_BLOCK_START,
    CONTENT_BLOCK_DELTA,
    CONTENT_BLOCK_STOP,
    MESSAGE_DELTA,
    MESSAGE_STOP,
    PING,
    ERROR,
)
# ConverseStream's events, by their wire names (counted as they are; `error` stands for its exception frames)
CONVERSE_MESSAGE_START = "messageStart"
CONVERSE_BLOCK_START = "contentBlockStart"
CONVERSE_BLOCK_DELTA = "contentBlockDelta"
CONVERSE_BLOCK_STOP = "contentBlockStop"
CONVERSE_MESSAGE_STOP = "messageStop"
CONVERSE_METADATA = "metadata"
CONVERSE_EVENT_TYPES = (CONVERSE_MESSAGE_START, CONVERSE_BLOCK_START, CONVERSE_BLOCK_DELTA, CONVERSE_BLOCK_STOP,
                        CONVERSE_MESSAGE_STOP, CONVERSE_METADATA)

REASON_START_WITHOUT_MESSAGE = "start_without_message"
REASON_MISSING_TYPE = "missing_type"
REASON_INVALID_JSON = "invalid_json"

SOURCE_EVENT = "event"
SOURCE_EXCEPTION_FRAME = "exception_frame"
SOURCE_HTTP_429 = "http_429"
SOURCE_ERROR_EVENT = "error_event"

OUTCOME_COMPLETED = "completed"
OUTCOME_ERROR = "error"
OUTCOME_TRUNCATED = "truncated"
OUTCOME_ABANDONED = "abandoned"
OUTCOMES = (OUTCOME_COMPLETED, OUTCOME_ERROR, OUTCOME_TRUNCATED, OUTCOME_ABANDONED)

# anthropic.stream.retry.result: another attempt was made, or none was (the caller got the error)
RETRY_RETRIED = "retried"
RETRY_EXHAUSTED = "exhausted"
RETRY_RESULTS = (RETRY_RETRIED, RETRY_EXHAUSTED)

RATE_LIMIT_RESOURCES = ("requests", "tokens", "input_tokens", "output_tokens")

TOKEN_INPUT = "input"
TOKEN_OUTPUT = "output"
TOKEN_CACHE_READ = "cache_read"
TOKEN_CACHE_CREATION = "cache_creation"

# error.type values, and what each error type stands for: the in-band error table, `bedrock_otel/errors.py`

# bedrock_otel.component values: where bedrock_otel caught one of its own errors. Every value is exported
# (at 0) from the moment instrumentation starts, so an absent series means the telemetry itself is missing.
INTERNAL_COMPONENTS = (
    "hooks.request", "hooks.send", "hooks.stream", "hooks.close", "hooks.frame",
    "observer.event", "observer.item", "observer.frame", "observer.exception", "observer.finish",
    "runtime.fork", "retry.read_ahead", "hooks.boto_call", "hooks.boto_send", "hooks.boto_stream",
    "observer.boto_event", "pressure",
)

# bedrock_otel.pressure.reason values: why pressure mode refused an attempt (the client raised its throttling error)
REFUSED_RETRY_BUDGET = "retry_budget"  # a retry over the key's retry budget
REFUSED_MAX_WAIT = "max_wait"  # an attempt whose turn was more than BEDROCK_OTEL_PRESSURE_MAX_WAIT away
PRESSURE_REASONS = (REFUSED_RETRY_BUDGET, REFUSED_MAX_WAIT)

# bedrock_otel.dropped.reason values: telemetry bedrock_otel could not record as asked (also exported at 0).
DROPPED_LABEL_OVERFLOW = "label_overflow"  # a label value folded into _OTHER by a cardinality cap
DROPPED_RECORD_FAILED = "record_failed"  # a recorder raised while taking a measurement
DROPPED_EXPORT_FAILED = "export_failed"  # spans (and, at exit, metric points) an OTLP export could not deliver
DROPPED_REASONS = (DROPPED_LABEL_OVERFLOW, DROPPED_RECORD_FAILED, DROPPED_EXPORT_FAILED)
