"""The naive KServe predictor the serving benchmark compares against (docs/stack.md's baseline).

A plain ``kserve.Model``: a synchronous ``predict`` turns the request dict into tensors and calls the
SavedModel signature once per request, on the event loop, in one worker behind kserve's standard
routes. No validation, no batching. Bound to 127.0.0.1.

With WORKERS > 1 it runs kserve's own multi-process server (the model pickled into each worker, TF
objects dropped and reloaded there), with kserve's 5 s liveness ping raised to
``PING_TIMEOUT_S``: importing TensorFlow in a new worker takes longer than 5 s here, and kserve
would otherwise kill and restart its workers in a loop ("Child process [...] died" in the log).

Usage (serving environment): python benchmarks/naive_predictor.py MODEL_DIR PORT [NAME] [WORKERS]
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve.model_server import FASTAPI_APP_IMPORT_STRING
from kserve.protocol.rest.multiprocess import server as multiprocess_server
from kserve.protocol.rest.server import RESTServer

PING_TIMEOUT_S = 120.0


class NaivePredictor(Model):
    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = model_dir
        spec = yaml.safe_load((Path(model_dir) / "feature_spec.yaml").read_text())
        self.numeric = {f["name"] for f in spec["features"] if f["type"] != "categorical"}

    def load(self) -> bool:
        import tensorflow as tf

        self.signature = tf.saved_model.load(self.model_dir).signatures["serving_default"]
        self.ready = True
        return True

    def __getstate__(self) -> dict[str, Any]:  # pickled into kserve's worker processes
        return {k: v for k, v in self.__dict__.items() if k != "signature"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.load()

    def _tensor(self, name: str, values: list[Any]) -> Any:
        import tensorflow as tf

        if name in self.numeric:
            return tf.constant(np.array([[np.nan if v is None else v] for v in values], dtype=np.float32))
        return tf.constant(np.array([["" if v is None else v] for v in values], dtype=object))

    def predict(self, payload: Any, headers: Any = None) -> Any:
        if isinstance(payload, InferRequest):
            columns = {
                t.name: [v.decode() if isinstance(v, bytes) else v for v in t.data] for t in payload.inputs
            }
        else:
            instances = payload["instances"]
            columns = {k: [inst.get(k) for inst in instances] for k in instances[0]}
        inputs = {
            k: self._tensor(k, v)
            for k, v in columns.items()
            if k in self.signature.structured_input_signature[1]
        }
        pds = self.signature(**inputs)["pd"].numpy().reshape(-1)
        if isinstance(payload, InferRequest):
            out = InferOutput(name="pd", shape=[len(pds), 1], datatype="FP32", data=[float(p) for p in pds])
            return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=[out])
        return {"predictions": [float(p) for p in pds]}


def serve_workers(server: ModelServer, port: int, workers: int) -> None:
    """kserve's multi-process REST server on 127.0.0.1, its liveness ping raised, stopped on SIGTERM."""
    is_alive = multiprocess_server.RESTServerProcess.is_alive
    multiprocess_server.RESTServerProcess.is_alive = lambda self, timeout=5: is_alive(self, PING_TIMEOUT_S)
    multi = multiprocess_server.RESTServerMultiProcess(
        FASTAPI_APP_IMPORT_STRING, server.dataplane, server.model_repository_extension, port, workers=workers
    )
    multi._rest_server.config.host = "127.0.0.1"  # kserve 0.21 would bind 0.0.0.0

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, multi.should_exit.set)
        await multi.start()

    asyncio.run(run())


def main() -> None:
    model_dir, port = sys.argv[1], int(sys.argv[2])
    name = sys.argv[3] if len(sys.argv) > 3 else "credit-risk"
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    model = NaivePredictor(name, model_dir)
    model.load()
    server = ModelServer(enable_grpc=False, workers=workers, http_port=port)
    server._register_and_check_atleast_one_model_is_ready([model])
    if workers > 1:
        serve_workers(server, port, workers)
        return
    rest = RESTServer(FASTAPI_APP_IMPORT_STRING, server.dataplane, server.model_repository_extension, port)
    rest.config.host = "127.0.0.1"  # kserve 0.21 would bind 0.0.0.0
    server.servers.append(rest.start())
    asyncio.run(server._serve())


if __name__ == "__main__":
    main()
