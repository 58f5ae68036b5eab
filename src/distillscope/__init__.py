"""distillscope: detect, stop and prove model distillation.

Capabilities live in one subpackage each (see ARCHITECTURE.md):
``teacher`` (model runtime), ``watermark``, ``gateway``, ``traffic``, ``distill``, ``audit``.
"""

__version__ = "0.1.0"

from distillscope.errors import DistillscopeError  # noqa: E402

__all__ = ["DistillscopeError", "__version__"]
