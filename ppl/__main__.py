import sys

from ppl.cli import main

sys.exit(main())
