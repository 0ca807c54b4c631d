"""`python -m tradebot`: the same command line as `tradebot`."""

from .cli import main

main()
