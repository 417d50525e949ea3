"""One module per ``maskgate`` subcommand (see :mod:`maskgate.cli`)."""
