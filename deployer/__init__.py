"""The AWS definitions (templates, state machine, buildspec, Lambda sources) and the command that pushes them."""
