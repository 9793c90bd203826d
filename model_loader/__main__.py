import sys

from model_loader.cli import main

sys.exit(main())
