from ibcheck.cli import entry

entry()
