"""`python -m charnext` runs the command line."""

from charnext.cli import main

if __name__ == "__main__":
    main()
