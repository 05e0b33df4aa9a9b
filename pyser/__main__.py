import sys

from pyser.cli import main

sys.exit(main())
