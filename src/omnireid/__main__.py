import sys

from omnireid.cli import main

sys.exit(main())
