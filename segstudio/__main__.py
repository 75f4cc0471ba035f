from segstudio.cli import entry

entry()
