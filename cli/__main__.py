"""``python -m cli`` runs the semindex command line."""

from cli.main import run

run()
