"""ibcheck: checks mutual-information bounds against exact values, and tracks a network in the information plane."""
__version__ = "0.1.0"
