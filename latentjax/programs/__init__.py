"""The command-line programs: flags in, files out. The only code that parses flags or writes files.

Each module is one `latentjax` verb (`discover`, `walk`, `invert`, `generate`, `convert` / `info`,
`train`); `flags` reads the config-driven commands' `--config` flags.
"""
