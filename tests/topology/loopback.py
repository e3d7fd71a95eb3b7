"""Run a Python module with every gRPC server it opens bound to 127.0.0.1 instead of ``[::]``.

Why: Beam's worker pool (``worker_pool_main``), the job service's logging server and the
FnApiRunner's control/data/state/logging servers inside the job service call
``add_insecure_port("[::]:PORT")`` with no option to choose the address (Beam 2.77). The job
service's own port binds ``localhost``. Rather than expose test processes on every interface,
the topology tests start them through this wrapper, which rewrites that one address; everything
else is Beam's own ``main``. (``docker/`` runs them unwrapped: inside a container ``[::]`` is the
container's own interfaces, and compose publishes only what it is told to.)

    python -m tests.topology.loopback apache_beam.runners.worker.worker_pool_main --service_port N
"""

from __future__ import annotations

import runpy
import sys
from typing import Any


def _patch_grpc() -> None:
    import grpc._server

    original = grpc._server._Server.add_insecure_port

    def add_insecure_port(self: Any, address: str) -> int:
        if address.startswith(("[::]:", "localhost:")):
            address = "127.0.0.1:" + address.rsplit(":", 1)[1]
        return int(original(self, address))

    grpc._server._Server.add_insecure_port = add_insecure_port  # type: ignore[method-assign]


if __name__ == "__main__":
    module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
    _patch_grpc()
    runpy.run_module(module, run_name="__main__", alter_sys=True)
