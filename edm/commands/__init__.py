"""The ``edm`` subcommands, one module per group, each loaded only when its command runs."""
