"""Roads in and out of a SignedGraph: torch export/re-import and graph-library conversions."""

from .handlers import ModuleHandler, register_module_handler

__all__ = ["ModuleHandler", "register_module_handler"]
