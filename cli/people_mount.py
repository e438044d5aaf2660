"""Mounts the people commands (schools, senders, groups, accounts, contacts, rollover,
notices)."""

from __future__ import annotations

import typer

import cli.roster_cmd  # noqa: F401  (adds the single changes to the apps below)
from cli.accounts_cmd import app as accounts_app
from cli.closed_cmd import app as closed_app
from cli.contacts_cmd import app as contacts_app
from cli.groups_cmd import app as groups_app
from cli.notices_cmd import notices
from cli.rollover_cmd import rollover
from cli.roster_cmd import classes_app
from cli.schools_cmd import app as schools_app
from cli.senders_cmd import app as senders_app


def mount_people(app: typer.Typer) -> None:
    # `mamoru schools closed add|remove|list` (the school calendar, cli/closed_cmd.py).
    schools_app.add_typer(closed_app, name="closed")
    # `mamoru schools classes list|add|rename|remove` (cli/roster_cmd.py).
    schools_app.add_typer(classes_app, name="classes")
    app.add_typer(schools_app, name="schools")
    app.add_typer(senders_app, name="senders")
    app.add_typer(groups_app, name="groups")
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(contacts_app, name="contacts")
    app.command("rollover")(rollover)
    app.command("notices")(notices)
