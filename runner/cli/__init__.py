"""The `runner` command line: the typer app and its one error handler (app), the entry point (main), one module per command group (commands/)."""
