"""The ``cart-cds`` command line.

    cart-cds serve [--dev] [--bind HOST:PORT] [--workers N]   run the service (gunicorn; --dev: Flask reloader)
    cart-cds discovery                                       print the discovery document
    cart-cds policy validate|show|test                       policy files as data (cds_service.policy_cli)

Settings come from ``CART_CDS_*`` variables; an invalid one stops the command with a message naming it
(exit status 1); so does any other start-up configuration error. Other modules add their command
groups with one ``main.add_command(...)`` line at the end of this file (``cart-cds audit ...``); packages
outside ``cds_service`` (the sandbox: ``cart-cds sandbox ...``, ``cart-cds demo``) declare theirs as
entry points in the ``cart_cds.commands`` group, so nothing here imports them.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import click
from flask import Flask
from gunicorn.app.base import BaseApplication

from cds_service.app import create_app
from cds_service.audit.cli import audit
from cds_service.discovery import discovery_document
from cds_service.gunicorn_conf import (
    multiprocess_metrics,
    production_options,
    tune_garbage_collection,
)
from cds_service.offline_evaluation import evaluate
from cds_service.policy_cli import policy
from cds_service.settings import Settings, start_check


def _load_app() -> tuple[Flask, Settings]:
    """Settings and app, or a clean exit: configuration errors found at start-up (bad variables, a
    missing trusted-clients file, ...) are ``ValueError``s whose messages name what to fix."""
    try:
        settings = Settings.from_env()
        app = create_app(settings)
        start_check(settings)
        return app, settings
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


class GunicornApp(BaseApplication):
    """Gunicorn serving an already-built app, configured from our settings rather than its own CLI."""

    def __init__(self, app: Flask, options: dict):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


@click.group(name="cart-cds", context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """cart-cds: CDS Hooks 2.0 order-sign service with Da Vinci CRD coverage information."""


@main.command()
@click.option("--dev", is_flag=True, help="Development server with Flask's reloader and debugger (never in production).")
@click.option("--bind", help="HOST:PORT to listen on [default: CART_CDS_BIND].")
@click.option("--workers", type=click.IntRange(min=1), help="Gunicorn worker processes [default: CART_CDS_WORKERS].")
def serve(dev: bool, bind: str | None, workers: int | None) -> None:
    """Run the service."""
    if not dev:
        multiprocess_metrics()  # before the app is built: the metrics library picks its mode on import
    app, settings = _load_app()
    bind = bind or settings.bind
    if dev:
        host, _, port = bind.rpartition(":")
        app.run(host=host.strip("[]"), port=int(port), debug=True, use_reloader=True)
        return
    # Production settings (workers, threads, timeouts, keep-alive, limits, access log): gunicorn_conf.
    tune_garbage_collection()
    GunicornApp(app, production_options(settings, bind=bind, workers=workers)).run()


@main.command()
def discovery() -> None:
    """Print the discovery document (GET /cds-services) as JSON."""
    click.echo(json.dumps(discovery_document(), indent=2))


# Command groups of other modules: one line each.
main.add_command(audit)
main.add_command(evaluate)
main.add_command(policy)


PLUGIN_GROUP = "cart_cds.commands"


def add_plugin_commands(group: click.Group, plugins=None) -> None:
    """Add the commands installed packages declare in the ``cart_cds.commands`` entry-point group.

    A plugin that fails to load, is not a click command or would shadow a built-in command is reported
    on stderr and skipped: an optional tool must never stop ``cart-cds serve``.
    """
    for plugin in entry_points(group=PLUGIN_GROUP) if plugins is None else plugins:
        try:
            command = plugin.load()
        except Exception as exc:  # third-party code run at import time: anything can go wrong
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if not isinstance(command, click.Command):
                problem = "not a click command"
            elif plugin.name in group.commands:
                problem = "a built-in command has that name"
            else:
                group.add_command(command, plugin.name)
                continue
        click.echo(f"warning: command plugin {plugin.name!r} ({plugin.value}) skipped: {problem}", err=True)


add_plugin_commands(main)
