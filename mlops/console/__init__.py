"""The local console: the stack in a browser (pipeline, state machine, SageMaker, registry, API, logs).

`aws.py` reads through the AWS APIs only; `app.py` has the pages and endpoints; `security.py` the
guard (loopback, a per-stack token, same-origin POSTs, body limits); `server.py` serves it with
uvicorn. `mlops up --open` and `mlops run --console` start it (mlops/run_commands.py).
"""

from mlops.console.server import ConsoleServer

__all__ = ["ConsoleServer"]
