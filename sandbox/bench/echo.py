"""The stack's ceiling: a trivial WSGI app served by gunicorn with the production settings, which only
parses a JSON body and echoes it back. Same server, same worker model, same body sizes as the hook, no
hook work. Test tooling for the benchmark; never part of the production app.

    python -m sandbox.bench.echo --bind 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse

import orjson
from flask import Flask, Response, request

from cds_service.cli import GunicornApp
from cds_service.gunicorn_conf import production_options
from cds_service.settings import Settings


def echo_app() -> Flask:
    app = Flask("cart_cds_bench_echo")

    @app.post("/echo")
    def echo() -> Response:
        return Response(orjson.dumps(orjson.loads(request.get_data(cache=False))), mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status":"ok"}', mimetype="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", required=True)
    args = parser.parse_args()
    host = args.bind.rpartition(":")[0]
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit("the echo server is benchmark tooling and binds to 127.0.0.1 only")
    options = production_options(Settings.from_env(), bind=args.bind)
    options.update(accesslog=None, post_fork=lambda server, worker: None)
    GunicornApp(echo_app(), options).run()


if __name__ == "__main__":
    main()
