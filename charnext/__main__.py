"""`python -m charnext` runs the command line."""

from charnext.cli.app import main

if __name__ == "__main__":
    main()
