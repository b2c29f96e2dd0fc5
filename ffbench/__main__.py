from ffbench.cli import entry

entry()
