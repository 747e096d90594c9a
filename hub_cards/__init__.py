"""Hub card templates (Jinja2 markdown), installed as ``nag_datasets.hub_cards`` (see ``setup.py``)."""
