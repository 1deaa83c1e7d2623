"""`python -m smarttrade_client ...`: the CLI, without the service installed."""

import sys

from smarttrade_client.cli import main

sys.exit(main(prog="smarttrade-client"))
