"""``python -m npusuite.platform`` is the ``npusuite`` command."""

from npusuite.platform.cli import main

main()
