"""The `checkerless` command line: the top layer. It may import everything below it; nothing
imports it (import-linter holds that)."""
