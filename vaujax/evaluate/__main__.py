"""`python -m vaujax.evaluate`: the `vaujax evaluate` command (vaujax/app/evaluate.py)."""

from vaujax.app import evaluate

evaluate.run()
