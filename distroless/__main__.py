import sys

from distroless.cli import main

sys.exit(main())
