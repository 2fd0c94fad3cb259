"""``python -m gcsan_pyg``: the ``gcsan-pyg`` command line."""
import sys

from gcsan_pyg.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
