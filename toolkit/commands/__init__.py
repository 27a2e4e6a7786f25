"""One module per `edgetk` command: add_parser(subparsers) and run(args)."""
