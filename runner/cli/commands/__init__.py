"""One module per command group; each registers its commands on runner.cli.app.app."""
