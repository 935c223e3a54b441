"""``python -m worker_container`` runs the relay; ``python -m worker_container.worker`` a worker."""

from .relay import main

main()
