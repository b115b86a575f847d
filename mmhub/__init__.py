"""The `mmhub` command line and the settings every process reads."""
