"""`python -m vaujax.train`: the `vaujax train` command (vaujax/app/train.py)."""

from vaujax.app import train

train.run()
