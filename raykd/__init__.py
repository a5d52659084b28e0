"""raykd: Ray-distributed search for knowledge distillation from internal representations.

Aguilar et al., "Knowledge Distillation from Internal Representations", AAAI 2020.
"""

__version__ = "0.1.0"
