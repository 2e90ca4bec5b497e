"""A deliberately slow Open Inference Protocol v2 server for tests (starlette + uvicorn),
run as a subprocess on 127.0.0.1:

    python slow_oip_server.py --delay-ms MS [--model NAME]

Binds a free port, prints it as its first line of stdout, then serves one model shaped
like the demo card's (input ``input`` FP32 [-1, 3, 224, 224], output ``logits`` FP32
[-1, 1000], zeros) through the shared codec, until it is killed.

It answers at once while every sample it has received is the first one it ever got
(the client's warm-ups send sample 0 only), and sleeps ``--delay-ms`` before each answer
from the first request that holds another sample on (a LoadGen test's real traffic), so
a client's request timeout fires in the test and not in its warm-up. Health and metadata
routes never wait.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

import numpy as np


def create_app(model: str, delay_s: float) -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from mlperf_pilot.oip import protocol

    state: dict[str, object] = {"first": None, "slow": False}
    metadata = {
        "name": model, "versions": ["1"], "platform": "slow-test-server",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}],
    }

    async def ok(request: Request) -> Response:
        return Response(status_code=200)

    async def server(request: Request) -> Response:
        return JSONResponse({"name": "slow-oip-server", "version": "0",
                             "extensions": ["binary_tensor_data"]})

    async def model_metadata(request: Request) -> Response:
        if request.path_params["name"] != model:
            return Response(protocol.error_body("unknown model"), status_code=404)
        return JSONResponse(metadata)

    async def infer(request: Request) -> Response:
        body = await request.body()
        try:
            decoded = protocol.decode_request(body, protocol.header_length_of(request.headers))
            batch = decoded.input("input")
        except protocol.ProtocolError as exc:
            return Response(protocol.error_body(str(exc)), status_code=400)
        first = state["first"]
        if first is None:
            first = state["first"] = np.array(batch[0], copy=True)
        if not state["slow"] and not all(np.array_equal(row, first) for row in batch):
            state["slow"] = True
        if state["slow"]:
            await asyncio.sleep(delay_s)
        logits = np.zeros((len(batch), 1000), dtype=np.float32)
        answer, headers = protocol.encode_response(
            model, [("logits", logits)], binary=decoded.wants_binary("logits"),
            model_version="1", request_id=decoded.id)
        return Response(answer, headers=headers)

    return Starlette(routes=[
        Route("/v2/health/live", ok), Route("/v2/health/ready", ok), Route("/v2", server),
        Route("/v2/models/{name}", model_metadata), Route("/v2/models/{name}/ready", ok),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    ])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--model", default="efficientnet-lite0-demo")
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sys.stdout.write(f"{sock.getsockname()[1]}\n")
    sys.stdout.flush()
    config = uvicorn.Config(create_app(args.model, args.delay_ms / 1000.0), log_level="warning",
                            access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
