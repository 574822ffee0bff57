"""The command line: one group, commands by flow (make, check, ship), shared options; it parses and
formats, the library does the work."""
