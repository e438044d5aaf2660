"""``python -m cli`` runs the ``mamoru`` command."""

from cli.main import main

main()
