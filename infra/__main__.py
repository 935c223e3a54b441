"""``python -m infra``: provision tables, bucket and broker topology from the environment."""

from __future__ import annotations

import logging
import sys

from taskcore.config import Config
from taskcore.errors import ConfigError

from .provision import provision


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = Config.from_env(need=["rabbitmq"])
    except ConfigError as exc:
        logging.getLogger("infra").error("configuration: %s", exc)
        return 2
    provision(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
