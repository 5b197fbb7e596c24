"""The project's one command line, `mlops`: it wires the parts' commands together."""
