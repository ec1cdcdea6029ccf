"""``python -m dglcleaner``: the same command line as the ``dglcleaner`` script."""
from dglcleaner.cli.main import main

if __name__ == "__main__":
    main(prog_name="dglcleaner")
