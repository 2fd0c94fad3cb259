import sys

from gcsan_pyg.cli.main import main

sys.exit(main())
