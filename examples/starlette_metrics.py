"""Serve bedrock_otel's metrics from your Starlette or FastAPI app at /metrics instead of a second port.

    pip install bedrock-otel starlette uvicorn && uvicorn --app-dir examples starlette_metrics:app
    (FastAPI: `app = FastAPI(); app.mount("/metrics", bedrock_otel.make_asgi_app())`, the same call.)
"""

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import bedrock_otel

bedrock_otel.instrument()  # or: import bedrock_otel.auto


async def index(request: object) -> PlainTextResponse:
    return PlainTextResponse("your application")


app = Starlette(routes=[Route("/", index), Mount("/metrics", app=bedrock_otel.make_asgi_app())])
