"""The command line: Typer options over charnext.api."""
