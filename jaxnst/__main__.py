import sys

from jaxnst.cli import main

sys.exit(main())
