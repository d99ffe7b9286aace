import sys

from medseg_nas.cli import main

sys.exit(main())
