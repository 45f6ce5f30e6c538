"""Loaded at interpreter start-up by programs run with `bedrock-otel run` (this folder is put on PYTHONPATH):
instrument with settings from the environment, then hand over to any other sitecustomize on the path."""

import os
import sys


def _instrument() -> None:
    try:
        import bedrock_otel.auto  # noqa: F401
    except ImportError as exc:  # another interpreter, without bedrock_otel installed: run the program as it is
        sys.stderr.write(f"bedrock-otel run: {sys.executable} cannot import bedrock_otel ({exc}); not instrumented\n")


def _chain() -> None:
    """Import the sitecustomize this one shadows, if there is one."""
    here = os.path.dirname(os.path.abspath(__file__))
    ours = sys.modules.pop("sitecustomize", None)
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    try:
        import sitecustomize  # noqa: F401
    except ImportError:
        if ours is not None:
            sys.modules["sitecustomize"] = ours
    finally:
        sys.path[:] = saved


_instrument()
_chain()
