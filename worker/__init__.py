"""The worker: a faust App (app.py) whose services run the high-volume stages (stages.py, handlers over
runtime.api) on the stage runtime (runtime.loop)."""
