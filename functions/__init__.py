"""The Chalice project of the edge, installed as ``taskcast.local.edge_app``.

``taskcast up`` runs ``chalice local`` on it from where it is installed; Chalice itself imports
``app`` and ``chalicelib`` from the project directory, never this package.
"""
