"""The command line: `reformbot` and its subcommands."""
