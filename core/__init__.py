"""sigward core: policies, image references, registry access, verification, admission and push handling.

Sub-modules import their heavy dependencies lazily so a function's cold start stays small.
"""

__version__ = "0.1.0"
