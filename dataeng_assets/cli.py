"""The `dataeng` command."""
import sys
def main(argv=None):
    print("todo"); return 0
