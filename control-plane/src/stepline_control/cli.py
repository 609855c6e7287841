"""``stepline-control``: ``serve`` the control plane, or ``run`` the whole platform on
this machine (``make run``)."""

from __future__ import annotations

import argparse

import uvicorn

from stepline_control.config import ControlSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stepline-control")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the REST API")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    run = sub.add_parser("run", help="start the whole platform on this machine")
    run.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve_api(host=args.host, port=args.port)
        return
    # no logging is configured before run_platform's own: the imports below log nothing
    # the terminal should show
    from stepline_control.onemachine.platform import CannotListen, run_platform

    settings = ControlSettings()  # the control plane's own settings apply on one machine too
    try:
        run_platform(settings, port=args.port)
    except CannotListen as exc:
        raise SystemExit(str(exc)) from None


def serve_api(*, host: str, port: int) -> None:
    """The control plane alone (as in a cluster): JSON logs, settings from the environment."""
    from stepline_control import logs
    from stepline_control.app import create_app

    settings = ControlSettings()
    logs.configure(settings.log_level)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning",
                log_config=None)


if __name__ == "__main__":
    main()
