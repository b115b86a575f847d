"""The `mmhub` command line (the settings every process reads are in hubconf)."""
