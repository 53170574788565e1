"""Re-verification of recorded verdicts (``sigward reverify``, the ``reverify`` function target)."""
