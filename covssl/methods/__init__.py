"""Methods: named compositions of a model (backbone, heads, EMA), an objective and views.

Each method is one entry of :mod:`covssl.methods.catalog`; :func:`preset` builds its objective.
"""

from covssl.methods.registry import METHODS, MethodDef, get_method, list_methods, method_defaults, objective_spec, preset, register_method
from covssl.methods import catalog  # noqa: F401  (fills METHODS)

__all__ = ["METHODS", "MethodDef", "get_method", "list_methods", "method_defaults", "objective_spec", "preset", "register_method"]
