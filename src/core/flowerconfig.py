"""Flower's options, from the one reader of the environment: `celery flower --conf=core/flowerconfig.py`.

Flower reads this file's names as its options. The basic-auth password is given here rather than on
the command line, so it does not show in the process list.
"""

from core.env import load_config

_config = load_config()
address = _config.flower_address
port = _config.flower_port
basic_auth = _config.flower_basic_auth
