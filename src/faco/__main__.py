"""`python -m faco`."""

from faco.cli import main

main()
