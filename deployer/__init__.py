"""The AWS definitions (templates, state machine, buildspec, Lambda sources) and the command that pushes them.

See deployer/README.md for the contracts (execution input, names, environment variables, stack outputs).
"""
