"""The `mechscope` command-line interface."""
