"""The bottom layer: the settings every process reads (settings.py) and the hub's topic and header names (topics.py).
Standard library only; every other package may import it, it imports none of them."""
