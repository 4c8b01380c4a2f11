"""CLI command modules, one per area; each registers on runner.cli_app.app."""
