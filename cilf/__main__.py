import sys

from cilf.cli import main

sys.exit(main())
