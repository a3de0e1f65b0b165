import sys

from mlpack.cli import main

sys.exit(main())
