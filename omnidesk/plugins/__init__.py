"""The channel plugin contract, the registry of installed plugins, and the conformance kit.

Plugins import from `omnidesk.plugins.contract` only; nothing here pulls in Django models.
"""
