"""``python -m headwater`` runs the CLI."""

from headwater.command import main

main()
