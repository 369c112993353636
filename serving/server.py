"""Start the KServe model server for one model, bound to a configurable host (127.0.0.1 locally).

kserve 0.21's RESTServer hard-codes host 0.0.0.0; we set the uvicorn config's host before serving,
and turn gRPC off (it would bind [::]:8081).
"""

from __future__ import annotations

import asyncio
import logging

from credit_risk.serving.model import CreditRiskModel
from kserve import ModelServer
from kserve.model_server import FASTAPI_APP_IMPORT_STRING
from kserve.protocol.rest.server import RESTServer

from credit_risk.contract import DEFAULT_OPERATING_THRESHOLD

log = logging.getLogger(__name__)


class HostBoundModelServer(ModelServer):
    """A single-process ModelServer whose HTTP listener binds ``host``."""

    def __init__(self, host: str, **kwargs):
        super().__init__(enable_grpc=False, workers=1, **kwargs)
        self.host = host

    def start(self, models) -> None:
        self._register_and_check_atleast_one_model_is_ready(models)
        self._rest_server = RESTServer(
            FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            access_log_format=self.access_log_format,
            workers=1,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
        )
        self._rest_server.config.host = self.host
        self.servers.append(self._rest_server.start())
        self.setup_event_loop()
        self.register_signal_handler()
        log.info("serving %s on http://%s:%d", [m.name for m in models], self.host, self.http_port)
        asyncio.run(self._serve())


def serve(
    model_dir: str,
    name: str = "credit-risk",
    host: str = "127.0.0.1",
    port: int = 8080,
    decision_threshold: float = DEFAULT_OPERATING_THRESHOLD,
) -> None:
    model = CreditRiskModel(name, model_dir, decision_threshold=decision_threshold)
    model.load()
    HostBoundModelServer(host=host, http_port=port).start([model])
