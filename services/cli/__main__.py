"""`python -m services.cli …` is `schoolhealth …`."""

from services.cli.main import main

main()
