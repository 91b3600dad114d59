"""`python -m syndicate` runs the command-line interface."""

from syndicate.cli import main

if __name__ == "__main__":
    main()
