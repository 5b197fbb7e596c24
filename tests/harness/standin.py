"""A tiny stand-in image for compute-plane tests that must not depend on the real model.

It honours the same fixed interface as the real container (container/train and container/serve,
SAGEMAKER_BASE_DIR, SAGEMAKER_BIND_TO_PORT, the /opt/ml layout, `name=value;` metric lines, the
failure file, GET /ping, POST /invocations) with a trivial "model" (the training data's most common
intent), so that tests of the harness's lifecycle logic (statuses, failures, stop, updates, error
mapping) run in a second. Tests of the real flow use the real container (tests marked slow).

Hyperparameters the stand-in understands: `fail` (write a failure reason and exit 1), `sleep`
(seconds to train, SIGTERM ends it early), `answer_delay` (seconds each invocation takes),
`ping_never` (serve never passes /ping).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

TRAIN = r"""
import collections, csv, json, os, pathlib, signal, sys, time

base = pathlib.Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
params = json.loads((base / "input/config/hyperparameters.json").read_text())
json.loads((base / "input/config/inputdataconfig.json").read_text())
json.loads((base / "input/config/resourceconfig.json").read_text())
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
print("stand-in training starts", flush=True)
if params.get("fail"):
    (base / "output/failure").write_text("bad data: " + params["fail"])
    sys.exit(1)
rows = []
for path in sorted((base / "input/data/training").rglob("*.csv")):
    with path.open() as handle:
        rows += list(csv.DictReader(handle))
deadline = time.monotonic() + float(params.get("sleep", "0"))
while time.monotonic() < deadline:
    time.sleep(0.05)
intents = collections.Counter(row["Intent"] for row in rows)
intent = intents.most_common(1)[0][0]
accuracy = intents[intent] / len(rows)
(base / "model/model.json").write_text(json.dumps({"intent": intent, **params}))
print(f"epoch=1; loss=0.9;", flush=True)
print(f"accuracy={accuracy:.4f}; macro_f1=0.25;", flush=True)
"""

SERVE = r"""
import http.server, json, os, pathlib, time

base = pathlib.Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
model = json.loads((base / "model/model.json").read_text())

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        attributes = self.headers.get("X-Amzn-SageMaker-Custom-Attributes")
        if attributes is not None:
            self.send_header("X-Amzn-SageMaker-Custom-Attributes", attributes)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/ping" and not model.get("ping_never"):
            self._answer(200, {"status": "ok"})
        else:
            self._answer(503, {"status": "not ready"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        inputs = body.get("inputs")
        if inputs == "boom":
            self._answer(500, {"error": "the model broke"})
            return
        if not isinstance(inputs, (str, list)) or inputs == "reject":
            self._answer(400, {"error": "inputs must be a string or a list"})
            return
        time.sleep(float(model.get("answer_delay", "0")))
        queries = [inputs] if isinstance(inputs, str) else inputs
        intent = model["intent"]
        predictions = [{"query": q, "intent": intent, "generated_text": intent} for q in queries]
        self._answer(200, {"predictions": predictions})

address = (os.environ.get("STANDIN_BIND", "127.0.0.1"), int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080")))
server = http.server.ThreadingHTTPServer(address, Handler)
server.daemon_threads = True
import signal, threading
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
"""

DOCKERFILE = """\
FROM mlops-base:bookworm
COPY train serve /opt/program/
RUN chmod 0755 /opt/program/train /opt/program/serve
ENV PATH="/opt/program:${PATH}" PYTHONUNBUFFERED=1 STANDIN_BIND=0.0.0.0
"""


def write_standin_tree(root: Path) -> Path:
    """Writes the stand-in's source tree (root/container/{train,serve,Dockerfile}); returns root."""
    container = root / "container"
    container.mkdir(parents=True, exist_ok=True)
    for name, source in (("train", TRAIN), ("serve", SERVE)):
        path = container / name
        path.write_text("#!/usr/bin/env python3\n" + textwrap.dedent(source).lstrip(), encoding="utf-8")
        path.chmod(0o755)
    (container / "Dockerfile").write_text(DOCKERFILE, encoding="utf-8")
    return root
