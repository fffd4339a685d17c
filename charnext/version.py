"""The package's version, in a module of its own so that any module can read it without
importing `charnext/__init__.py`'s lazy API (which would tie every module to `charnext.api`)."""

__version__ = "0.2.0"
