"""``cart-cds sandbox ...``: the sandbox as commands (registered on the main CLI as the ``sandbox`` group).

- ``fhir-server --port 8090``: run the loopback replay FHIR server (test tooling);
- ``load --fhir-server URL``: upload the synthetic patients (tagged, PUT transactions, idempotent);
- ``record --fhir-server URL --out DIR``: run our fallback queries per scenario and store the answers;
- ``remove --fhir-server URL``: delete everything carrying the sandbox tag;
- ``build [--check]``: regenerate the committed sandbox files from ``sandbox.scenarios``.
"""

from __future__ import annotations

from pathlib import Path

import click
import requests

from sandbox import build as generator
from sandbox import hapi
from sandbox.replay_server import base_url, make_server

FHIR_SERVER = click.option("--fhir-server", required=True, metavar="URL", help="FHIR base URL, e.g. https://hapi.fhir.org/baseR4")
SCENARIO = click.option("--scenario", "scenarios", multiple=True, metavar="NAME", help="Only this scenario (repeatable).")


def _run(action):
    try:
        return action()
    except requests.RequestException as exc:  # before OSError, which it subclasses
        raise click.ClickException(f"FHIR server unreachable or too slow: {type(exc).__name__}") from None
    except (hapi.SandboxError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


@click.group("sandbox")
def sandbox() -> None:
    """Synthetic CAR-T patients, recorded FHIR responses and a loopback replay server (test tooling)."""


@sandbox.command("fhir-server")
@click.option("--port", default=8090, show_default=True, type=click.IntRange(0, 65535))
@click.option("--host", default="127.0.0.1", show_default=True, type=click.Choice(["127.0.0.1", "localhost"]))
def fhir_server(port: int, host: str) -> None:
    """Serve the sandbox patients and recorded responses on loopback (read-only test tooling)."""
    server = _run(lambda: make_server(host, port))
    click.echo(f"sandbox replay FHIR server (test tooling) at {base_url(server)}  -- Ctrl+C to stop")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@sandbox.command()
@FHIR_SERVER
@SCENARIO
def load(fhir_server: str, scenarios: tuple[str, ...]) -> None:
    """Upload the sandbox patients as PUT transactions (re-running updates them)."""
    for outcome in _run(lambda: hapi.load(fhir_server, scenarios)):
        click.echo(f"{outcome.scenario}: {outcome.detail}")


@sandbox.command()
@FHIR_SERVER
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory for <scenario>.json")
@click.option("--server-name", default="hapi", show_default=True, help="Recorded as the file's 'server'.")
@SCENARIO
def record(fhir_server: str, out: Path, server_name: str, scenarios: tuple[str, ...]) -> None:
    """Run the fallback queries of each scenario against the server and store the responses."""
    for outcome in _run(lambda: hapi.record(fhir_server, out, scenarios, server_name)):
        click.echo(f"{outcome.scenario}: {outcome.detail}")


@sandbox.command()
@FHIR_SERVER
def remove(fhir_server: str) -> None:
    """Delete every resource carrying the sandbox tag."""
    click.echo(f"deleted {_run(lambda: hapi.remove(fhir_server))} sandbox resources")


@sandbox.command("build")
@click.option("--check", is_flag=True, help="Only report files that differ from the generator.")
def build_files(check: bool) -> None:
    """Regenerate sandbox/patients, hooks, expected and recorded/replay from sandbox.scenarios."""
    if check:
        stale = generator.stale_files()
        if stale:
            raise click.ClickException("out of date: " + ", ".join(stale[:10]) + " -- run: cart-cds sandbox build")
        click.echo("sandbox files are up to date")
        return
    click.echo(f"wrote {generator.write()} files")
