"""Extractor plug-ins, one module each; create them with ``delfverify.features.make_extractor``."""
