"""Serve bedrock_otel's metrics from your Flask app at /metrics instead of a second port.

    pip install bedrock-otel flask && flask --app examples/flask_metrics.py run
"""

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import bedrock_otel

bedrock_otel.instrument()  # or: import bedrock_otel.auto

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "your application"


# /metrics goes to bedrock_otel (all workers' sum when PROMETHEUS_MULTIPROC_DIR is set); the rest to Flask.
app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": bedrock_otel.make_wsgi_app()})  # type: ignore[method-assign]
