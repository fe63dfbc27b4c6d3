"""Methods: named compositions of a model (backbone, heads, EMA) and an objective."""

from covssl.methods.registry import METHODS, MethodDef, get_method, list_methods, method_defaults, register_method

__all__ = ["METHODS", "MethodDef", "get_method", "list_methods", "method_defaults", "register_method"]
